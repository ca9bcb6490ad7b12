// Package bootstrap is Strata's bootstrap server and its client, in the
// manner of Napster's central server and KaZaA's supernode lists: the only
// fixed addresses in the network.
//
// # Protocol
//
// A node dials a bootstrap server (any peer ID is accepted), runs the
// session hello, and sends one request per stream:
//
//   - JoinRequest{Role} → JoinReply{Supernodes, Become, ObservedAddr}. A node
//     about to attach asks for supernodes. The reply lists up to five live
//     supernodes, those with free leaf slots first, in a random order
//     weighted by free slots. Become = supernode (with a mesh sample) answers
//     a node that asked with role supernode. ObservedAddr is the address the
//     request came from, so a node learns how others see it.
//   - CheckIn{Role, Auto, Declining} → CheckInReply{Ask, AcceptYoung,
//     counts, Reachable, CheckInMillis}: the promotion side (promotion.go).
//     The server dials each node back from a second socket, answers its
//     bandwidth probes (Probe → ProbeGrant, bytes, ProbeResult, bytes,
//     ProbeDone) within a promotion.ProbeLimiter, and every heartbeat runs
//     the promotion.Planner; the reply carries the plan's ask for the node.
//   - Register{Addrs, Load} → RegisterReply{Peers, HeartbeatMillis,
//     ExpiryMillis}, only from a session whose hello said role supernode
//     (others get proto.CodeRefused). It is both the registration and the
//     heartbeat: a supernode sends it every HeartbeatMillis to every
//     bootstrap server, and is forgotten after ExpiryMillis without one.
//     Peers is a random sample of other supernodes for the mesh.
//
// Any other request fails its stream with proto.CodeProtocol; the
// connection goes on.
//
// # State
//
// All state is soft. The registry holds what the last heartbeats said, and
// a restarted bootstrap server knows the network again within one heartbeat
// interval. Nothing is written to disk; several bootstrap servers run side
// by side without talking to each other, because supernodes register with
// all of them.
//
// # Layout
//
// Registry is the sans-I/O core: plain data, time passed in, randomness
// from a seeded source, so the simulator and tests drive it directly.
// Server runs it on a transport.Transport and serves GET /v1/status over
// HTTP. Client is what nodes use to join and to heartbeat.
package bootstrap
