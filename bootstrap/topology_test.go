package bootstrap

import (
	"testing"
	"time"

	"github.com/strata-p2p/strata/proto"
)

func TestTopologyEventsHistoryAndLinks(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s, err := New(Config{Now: func() time.Time { return now }}, proto.PeerID{1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b := proto.PeerID{0xa}, proto.PeerID{0xb}
	for _, id := range []proto.PeerID{a, b} {
		if _, err := s.reg.Register(now, id, []string{"127.0.0.1:1"}, "127.0.0.1:1", proto.Load{Leaves: 2, Capacity: 10}); err != nil {
			t.Fatal(err)
		}
	}
	s.topo.record(a, &proto.Topology{Neighbours: proto.PeerIDs{b}, Leaves: proto.PeerIDs{{0xc}, {0xd}}})
	top := s.Topology()
	if len(top.Supernodes) != 2 || len(top.Events) != 2 || len(top.History) != 1 || top.History[0].Ratio != 2 {
		t.Fatalf("topology %+v: want 2 supernodes, 2 registered events, one ratio sample of 2", top)
	}
	for _, n := range top.Supernodes {
		if n.PeerID == a && (len(n.Neighbours) != 1 || len(n.Leaves) != 2) {
			t.Fatalf("links of a: %+v", n)
		}
	}
	now = now.Add(time.Minute) // both miss their heartbeats
	s.mu.Lock()
	s.reg.Expire(now)
	s.mu.Unlock()
	top = s.Topology()
	if len(top.Supernodes) != 0 || len(top.Events) != 4 || top.Events[3].What != "expired" {
		t.Fatalf("after expiry: %+v", top)
	}
	if _, ok := s.topo.links[a]; ok {
		t.Fatal("links of an expired supernode kept")
	}
}
