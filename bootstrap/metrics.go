package bootstrap

import (
	"github.com/strata-p2p/strata/internal/metrics"
	"github.com/strata-p2p/strata/proto"
)

// serverMetrics is the bootstrap server's /metrics, read from Status and
// Topology at each scrape. It belongs to one API handler.
type serverMetrics struct {
	s   *Server
	reg *metrics.Registry

	info, connections, supernodes, full, leaves *metrics.Gauge
	capacity, freeSlots, indexFiles, ratio      *metrics.Gauge
	promotionAsks, promotionNeed                *metrics.Gauge
	supernodeEvents                             *metrics.Counter
	requests                                    *metrics.Counter

	lastEvent *TopologyEvent // the newest topology event already counted; scrapes are serialised
}

func newServerMetrics(s *Server) *serverMetrics {
	r := metrics.NewRegistry()
	m := &serverMetrics{s: s, reg: r}
	m.info = r.Gauge("strata_bootstrap_info", "Always 1; the labels say which bootstrap server this is.", "peer_id", "agent")
	m.connections = r.Gauge("strata_bootstrap_connections", "Connections the bootstrap server is serving now (joining nodes and supernodes).")
	m.supernodes = r.Gauge("strata_bootstrap_supernodes", "Live supernodes registered with this bootstrap server.")
	m.full = r.Gauge("strata_bootstrap_supernodes_full", "Live supernodes with no free leaf slot.")
	m.leaves = r.Gauge("strata_bootstrap_leaves", "Leaves of the live supernodes, as they report them.")
	m.capacity = r.Gauge("strata_bootstrap_capacity", "Leaf slots of the live supernodes (the sum of their --max-leaves).")
	m.freeSlots = r.Gauge("strata_bootstrap_free_slots", "Free leaf slots of the live supernodes.")
	m.indexFiles = r.Gauge("strata_bootstrap_index_files", "Files indexed by the live supernodes, summed.")
	m.ratio = r.Gauge("strata_bootstrap_leaves_per_supernode", "Leaves divided by live supernodes (0 with no supernode).")
	m.promotionAsks = r.Gauge("strata_bootstrap_promotion_asks", "Nodes the promotion planner asks to change role now, by what it asks.", "ask")
	m.promotionNeed = r.Gauge("strata_bootstrap_promotion_need", "Supernodes the promotion planner wants for the leaves it counts.")
	m.supernodeEvents = r.Counter("strata_bootstrap_supernode_events_total",
		"Supernodes that appeared (registered) or went (expired, missing their heartbeats), as the network map saw them.", "event")
	m.requests = r.Counter("strata_bootstrap_requests_total",
		"Requests the bootstrap server answered (outcome ok) or refused with an error, by message type: JoinRequest is a node joining, Register a supernode registering or heartbeating.", "type", "outcome")
	for _, t := range []proto.MsgType{proto.TypeJoinRequest, proto.TypeRegister} {
		m.requests.Add(0, t.String(), "ok")
		m.requests.Add(0, t.String(), "refused")
	}
	m.supernodeEvents.Add(0, "registered")
	m.supernodeEvents.Add(0, "expired")
	r.OnCollect(m.collect)
	return m
}

func (m *serverMetrics) collect() {
	st := m.s.Status()
	m.info.Set(1, st.PeerID.String(), m.s.cfg.Agent)
	m.connections.Set(float64(len(m.s.conns)))
	m.s.reqs.each(func(t proto.MsgType, ok bool, n uint64) {
		outcome := "refused"
		if ok {
			outcome = "ok"
		}
		m.requests.Set(float64(n), t.String(), outcome)
	})
	t := st.Totals
	m.supernodes.Set(float64(t.Supernodes))
	m.leaves.Set(float64(t.Leaves))
	m.capacity.Set(float64(t.Capacity))
	m.freeSlots.Set(float64(t.FreeSlots))
	m.indexFiles.Set(float64(t.IndexFiles))
	m.ratio.Set(t.LeavesPerSupernode)
	full := 0
	for _, sn := range st.Supernodes {
		if sn.Load.Free() == 0 {
			full++
		}
	}
	m.full.Set(float64(full))
	if p := st.Promotion; p != nil {
		m.promotionAsks.Set(float64(len(p.Plan.StepUp)), "step-up")
		m.promotionAsks.Set(float64(len(p.Plan.StepDown)), "step-down")
		m.promotionNeed.Set(float64(p.Plan.Need))
	}

	// Count the topology events newer than the last scrape. The map keeps
	// its last events only; more than that between two scrapes are
	// undercounted.
	events := m.s.Topology().Events
	start := 0
	if m.lastEvent != nil {
		for i := len(events) - 1; i >= 0; i-- {
			if e := events[i]; e.At.Equal(m.lastEvent.At) && e.What == m.lastEvent.What && e.PeerID == m.lastEvent.PeerID {
				start = i + 1
				break
			}
		}
	}
	for _, e := range events[start:] {
		if e.What == "registered" || e.What == "expired" {
			m.supernodeEvents.Inc(e.What)
		}
	}
	if len(events) > 0 {
		last := events[len(events)-1]
		m.lastEvent = &last
	}
}
