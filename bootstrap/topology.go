package bootstrap

import (
	"net/http"
	"slices"
	"time"

	"github.com/strata-p2p/strata/proto"
)

// Limits on what the topology view keeps.
const (
	topologyHistory = 720 // samples of the leaves-per-supernode ratio (an hour at 5 s)
	topologyEvents  = 200
	sampleEvery     = 5 * time.Second
)

// topology keeps what supernodes say about their links and leaves, the
// ratio over time and registrations/expiries, for the network map. It is
// soft state like the registry and guarded by Server.mu.
type topology struct {
	links      map[proto.PeerID]proto.Topology
	history    []RatioSample
	events     []TopologyEvent
	live       map[proto.PeerID]bool
	lastSample time.Time
}

// RatioSample is one point of the leaves-per-supernode chart.
type RatioSample struct {
	At         time.Time `json:"at"`
	Supernodes int       `json:"supernodes"`
	Leaves     int       `json:"leaves"`
	Ratio      float64   `json:"ratio"`
}

// TopologyEvent is a supernode appearing or going.
type TopologyEvent struct {
	At     time.Time    `json:"at"`
	What   string       `json:"what"` // "registered" or "expired"
	PeerID proto.PeerID `json:"peer_id"`
}

// TopologyNode is one supernode on the map.
type TopologyNode struct {
	PeerID     proto.PeerID   `json:"peer_id"`
	Addrs      []string       `json:"addrs"`
	Load       proto.Load     `json:"load"`
	Neighbours []proto.PeerID `json:"neighbours"`
	Leaves     []proto.PeerID `json:"leaves"`
}

// Topology is the network map's data.
type Topology struct {
	Supernodes []TopologyNode  `json:"supernodes"`
	History    []RatioSample   `json:"history"`
	Events     []TopologyEvent `json:"events"`
}

func newTopology() *topology {
	return &topology{links: map[proto.PeerID]proto.Topology{}, live: map[proto.PeerID]bool{}}
}

// record stores a supernode's links. Only registered supernodes are kept.
func (t *topology) record(id proto.PeerID, m *proto.Topology) { t.links[id] = *m }

// observe diffs the live supernodes against the last look (events), drops
// links of supernodes that are gone, and samples the ratio every 5 s.
func (t *topology) observe(now time.Time, st Status) {
	live := make(map[proto.PeerID]bool, len(st.Supernodes))
	for _, s := range st.Supernodes {
		live[s.PeerID] = true
		if !t.live[s.PeerID] {
			t.event(now, "registered", s.PeerID)
		}
	}
	for id := range t.live {
		if !live[id] {
			t.event(now, "expired", id)
			delete(t.links, id)
		}
	}
	t.live = live
	if now.Sub(t.lastSample) >= sampleEvery {
		t.lastSample = now
		t.history = append(t.history, RatioSample{At: now, Supernodes: st.Totals.Supernodes, Leaves: st.Totals.Leaves,
			Ratio: st.Totals.LeavesPerSupernode})
		if len(t.history) > topologyHistory {
			t.history = t.history[len(t.history)-topologyHistory:]
		}
	}
}

func (t *topology) event(now time.Time, what string, id proto.PeerID) {
	t.events = append(t.events, TopologyEvent{At: now, What: what, PeerID: id})
	if len(t.events) > topologyEvents {
		t.events = t.events[len(t.events)-topologyEvents:]
	}
}

// Topology returns the network map's data.
func (s *Server) Topology() Topology {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.reg.Snapshot(s.cfg.Now())
	s.topo.observe(s.cfg.Now(), st)
	out := Topology{History: slices.Clone(s.topo.history), Events: slices.Clone(s.topo.events)}
	for _, sn := range st.Supernodes {
		l := s.topo.links[sn.PeerID]
		out.Supernodes = append(out.Supernodes, TopologyNode{PeerID: sn.PeerID, Addrs: sn.Addrs, Load: sn.Load,
			Neighbours: append([]proto.PeerID{}, l.Neighbours...), Leaves: append([]proto.PeerID{}, l.Leaves...)})
	}
	return out
}

// TopologyHandler serves GET /v1/topology.
func (s *Server) TopologyHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Topology())
	}
}
