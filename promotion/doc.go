// Package promotion decides which nodes are supernodes: it measures a
// node's capacity, computes how many supernodes the network needs, and
// turns both into role changes that do not flap. It opens no sockets.
//
// # Parts
//
// On every node:
//
//   - Measurer takes a Capacity: upload and download rates achieved in real
//     transfers (RateMeter) or, with no recent traffic, a short active probe
//     (Prober, implemented by the node); the cores available to the process
//     (GOMAXPROCS, CPUs and the cgroup v2 cpu.max or v1 CFS quota); the
//     memory available (MemAvailable and the cgroup memory limit less its
//     working set); the load; a short benchmark of keyword-index lookups;
//     uptime and the average session length (History, kept across restarts);
//     and reachability, as established by a bootstrap server's dial-back.
//   - Policy is the node's decision: a sans-I/O state machine fed with its
//     own Capacity (Observe) and the network's Demand (Decide), returning a
//     Decision with its reason and every input.
//
// On a bootstrap server:
//
//   - Planner computes, from what the server measured itself (Measured:
//     its dial-back, its probe, how long it has known each node), how many
//     supernodes the network needs for Config.LeavesPerSupernode leaves each
//     with Config.Headroom to spare, and whom to ask: the best candidates to
//     step up, the idle then weakest supernodes to step down (never a
//     pinned one). When the count is right but the best candidate is far
//     stronger than the weakest supernode (Config.SwapFactor), it asks the
//     candidate up, and the surplus then takes the weak one down, so an early
//     pick in a network just started does not stay for good. Plan.Demand is
//     what each node is told.
//   - ProbeLimiter bounds what bandwidth probes cost the server, and
//     RequestLimiter bounds promotion-related requests per source address.
//
// # What counts
//
// Only measurements: a node's Policy sees the node's own measurements and
// the server's demand; the Planner sees what the server measured. Nothing a
// node says about its own capacity enters either (proto.Load, which
// supernodes report, is not an input; a supernode's leaf count only orders
// step-downs, where lying can only keep the liar's own role). The one thing
// a node says that is believed is "I decline" (Policy.Declining,
// Candidate.Declined): it can only lower that node's chances.
//
// A node steps up only when asked and eligible; a node that cannot be dialled
// back is never eligible, however strong. The server ranks candidates by the
// leaves their measured bandwidth can serve, weighted by how long it has
// known them, those known for Config.MinUptime first; when it has no
// candidate that old (a network just started) it says so (AcceptYoung) and
// the uptime gate is waived.
//
// # Against flapping
//
// The gates are a band: a supernode keeps its role down to
// Config.StayFraction of the thresholds it needed to step up. Measurements
// are smoothed. A change needs Config.Confidence consecutive decisions
// wanting it and waits out a hold-down after the previous change
// (Config.MinInterval, doubling up to Config.MaxBackoff when changes come
// quickly, as gtk-gnutella does). The planner asks for step-ups below
// Need and step-downs above Keep (twice the headroom), counts the leaves a
// change converts, never asks a node to step down within MinInterval of its
// stepping up (or the reverse), and keeps asking the nodes it already
// asked unless another is clearly better (Config.Stickiness).
//
// # The simulator
//
// sim.go runs the same Policy and Planner for many nodes in logical
// rounds with a seeded generator: the benchmarks measure convergence after
// a 50-node join and role changes under Weibull churn.
//
// # Integration (the runtime's side)
//
// node/promotion.go and bootstrap/promotion.go do this:
// a node runs a Measurer periodically, feeds Policy.Observe, sends
// Policy.Declining with its join and heartbeats, calls Policy.Decide with
// the Demand from each reply, and carries out Promote (start the supernode
// role, register) and Demote (hand the leaves off, then stop); when it
// cannot, it calls Policy.SetRole. A bootstrap server dials nodes back,
// answers probes within a ProbeLimiter, limits requests with a
// RequestLimiter, runs Planner.Plan every heartbeat interval and puts
// Plan.Demand(id) in each reply.
package promotion
