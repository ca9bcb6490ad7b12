package bootstrap

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-p2p/strata/proto"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func pid(n int) proto.PeerID {
	var p proto.PeerID
	p[0], p[1] = byte(n>>8), byte(n)
	return p
}

func newTestRegistry(t *testing.T, cfg Config) *Registry {
	t.Helper()
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(1, 2))
	}
	r, err := NewRegistry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func register(t *testing.T, r *Registry, now time.Time, n int, load proto.Load) proto.RegisterReply {
	t.Helper()
	reply, err := r.Register(now, pid(n), []string{"10.0.0.1:7400"}, "10.0.0.1:7400", load)
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

func ids(list []proto.PeerInfo) []proto.PeerID {
	out := make([]proto.PeerID, len(list))
	for i, p := range list {
		out[i] = p.ID
	}
	return out
}

func TestRegisterAndExpire(t *testing.T) {
	r := newTestRegistry(t, Config{})
	room := proto.Load{Capacity: 10}
	reply := register(t, r, t0, 1, room)
	if reply.HeartbeatMillis != 1000 || reply.ExpiryMillis != 3500 || len(reply.Peers) != 0 {
		t.Fatalf("first register: %+v", reply)
	}
	reply = register(t, r, t0, 2, room)
	if got := ids(reply.Peers); !slices.Equal(got, []proto.PeerID{pid(1)}) {
		t.Fatalf("second supernode's mesh peers = %v, want only the first", got)
	}

	// 1 keeps heartbeating; 2 stops after t0.
	for s := 1; s <= 3; s++ {
		register(t, r, t0.Add(time.Duration(s)*time.Second), 1, room)
	}
	now := t0.Add(3400 * time.Millisecond)
	if n := len(r.Snapshot(now).Supernodes); n != 2 {
		t.Fatalf("at 3.4s %d supernodes live, want 2", n)
	}
	now = t0.Add(3500 * time.Millisecond)
	if got := ids(r.Join(now, pid(99), proto.RoleLeaf, "x:1").Supernodes); !slices.Equal(got, []proto.PeerID{pid(1)}) {
		t.Fatalf("join after 2's expiry lists %v, want only 1 (even before Expire runs)", got)
	}
	if dropped := r.Expire(now); !slices.Equal(dropped, []proto.PeerID{pid(2)}) {
		t.Fatalf("Expire dropped %v, want [2]", dropped)
	}
	st := r.Snapshot(now)
	if len(st.Supernodes) != 1 || st.Supernodes[0].PeerID != pid(1) || st.Supernodes[0].LastSeenMillis != 500 {
		t.Fatalf("snapshot after expiry: %+v", st.Supernodes)
	}
	if r.Len() != 1 {
		t.Fatalf("registry holds %d entries after Expire, want 1", r.Len())
	}
	// A heartbeat after expiry registers it again.
	register(t, r, now, 2, room)
	if r.Len() != 2 {
		t.Fatalf("re-registration: %d entries, want 2", r.Len())
	}
}

func TestRegisterAddresses(t *testing.T) {
	many := make([]string, 20)
	for i := range many {
		many[i] = "10.1.0." + string(rune('a'+i)) + ":1"
	}
	for _, tc := range []struct {
		name     string
		addrs    []string
		observed string
		want     []string
	}{
		{"empty uses observed", nil, "203.0.113.5:40000", []string{"203.0.113.5:40000"}},
		{"unspecified v4 takes observed host, keeps port", []string{"0.0.0.0:7400"}, "203.0.113.5:40000", []string{"203.0.113.5:7400"}},
		{"unspecified v6", []string{"[::]:7400"}, "[2001:db8::1]:5", []string{"[2001:db8::1]:7400"}},
		{"empty host", []string{":7400"}, "203.0.113.5:1", []string{"203.0.113.5:7400"}},
		{"mixed, deduplicated", []string{"0.0.0.0:7400", "192.168.1.2:7400", "[::]:7400"}, "203.0.113.5:1",
			[]string{"203.0.113.5:7400", "192.168.1.2:7400"}},
		{"garbage dropped", []string{"no-port", "host:", strings.Repeat("a", 300) + ":1"}, "203.0.113.5:1", []string{"203.0.113.5:1"}},
		{"names kept", []string{"sn.example.org:7400"}, "203.0.113.5:1", []string{"sn.example.org:7400"}},
		{"capped", append([]string(nil), many...), "203.0.113.5:1", many[:proto.MaxAddrs]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRegistry(t, Config{})
			reply, err := r.Register(t0, pid(1), tc.addrs, tc.observed, proto.Load{})
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Snapshot(t0).Supernodes[0].Addrs; !slices.Equal(got, tc.want) {
				t.Fatalf("addrs = %q, want %q", got, tc.want)
			}
			// The supernode is told the addresses it is handed out under.
			if !slices.Equal(reply.Addrs, tc.want) {
				t.Fatalf("reply addrs = %q, want %q", reply.Addrs, tc.want)
			}
		})
	}
}

func TestRegisterMeshSample(t *testing.T) {
	mk := func() *Registry {
		r := newTestRegistry(t, Config{MeshPeers: 3, Rand: rand.New(rand.NewPCG(7, 7))})
		for i := 1; i <= 20; i++ {
			register(t, r, t0, i, proto.Load{Capacity: 10})
		}
		return r
	}
	a, b := mk(), mk()
	seen := map[proto.PeerID]bool{}
	for round := range 10 {
		ra := register(t, a, t0, 5, proto.Load{})
		rb := register(t, b, t0, 5, proto.Load{})
		if !slices.Equal(ids(ra.Peers), ids(rb.Peers)) {
			t.Fatalf("round %d: same seed gave %v and %v", round, ids(ra.Peers), ids(rb.Peers))
		}
		if len(ra.Peers) != 3 {
			t.Fatalf("got %d mesh peers, want MeshPeers=3", len(ra.Peers))
		}
		for _, p := range ra.Peers {
			if p.ID == pid(5) {
				t.Fatal("mesh sample includes the registering supernode itself")
			}
			if p.Role != proto.RoleSupernode || len(p.Addrs) == 0 {
				t.Fatalf("peer info %+v: want role supernode with addresses", p)
			}
			seen[p.ID] = true
		}
		if slices.ContainsFunc(ids(ra.Peers)[1:], func(id proto.PeerID) bool { return id == ra.Peers[0].ID }) {
			t.Fatalf("duplicate in sample %v", ids(ra.Peers))
		}
	}
	if len(seen) < 8 {
		t.Fatalf("10 samples of 3 from 19 covered only %d supernodes; the sample is not random", len(seen))
	}
}

func TestRegistryFull(t *testing.T) {
	r := newTestRegistry(t, Config{MaxSupernodes: 2})
	register(t, r, t0, 1, proto.Load{})
	register(t, r, t0.Add(2*time.Second), 2, proto.Load{})
	_, err := r.Register(t0.Add(2*time.Second), pid(3), nil, "10.0.0.3:1", proto.Load{})
	if proto.CodeOf(err) != proto.CodeFull {
		t.Fatalf("third supernode: err %v, want code full", err)
	}
	// Refreshing a known supernode still works when full.
	register(t, r, t0.Add(2*time.Second), 2, proto.Load{})
	// Once 1 has expired its slot is reused, without waiting for Expire.
	if _, err := r.Register(t0.Add(4*time.Second), pid(3), nil, "10.0.0.3:1", proto.Load{}); err != nil {
		t.Fatalf("after an expiry: %v", err)
	}
}

func TestJoinFreeSlotsFirst(t *testing.T) {
	r := newTestRegistry(t, Config{JoinReplySize: 4, AttachHold: time.Nanosecond})
	register(t, r, t0, 1, proto.Load{Leaves: 10, Capacity: 10})  // full
	register(t, r, t0, 2, proto.Load{Leaves: 0, Capacity: 10})   // room
	register(t, r, t0, 3, proto.Load{Leaves: 12, Capacity: 10})  // over-full
	register(t, r, t0, 4, proto.Load{Leaves: 5, Capacity: 10})   // room
	register(t, r, t0, 5, proto.Load{Leaves: 100, Capacity: 10}) // most over-full
	for i := range 20 {
		reply := r.Join(t0.Add(time.Duration(i)*time.Millisecond), pid(99), proto.RoleLeaf, "198.51.100.1:9")
		got := ids(reply.Supernodes)
		if len(got) != 4 {
			t.Fatalf("got %d supernodes, want JoinReplySize=4", len(got))
		}
		if !slices.Contains(got[:2], pid(2)) || !slices.Contains(got[:2], pid(4)) {
			t.Fatalf("join %d: %v; want the two with free slots first", i, got)
		}
		if reply.Become != proto.RoleUnknown || reply.ObservedAddr != "198.51.100.1:9" {
			t.Fatalf("join %d: become %s observed %q", i, reply.Become, reply.ObservedAddr)
		}
		if slices.Contains(got, pid(5)) {
			t.Fatalf("join %d: %v lists the most over-committed supernode ahead of others", i, got)
		}
	}
	// A supernode is never handed itself.
	if got := ids(r.Join(t0, pid(2), proto.RoleLeaf, "x:1").Supernodes); slices.Contains(got, pid(2)) {
		t.Fatalf("supernode 2 joining got itself: %v", got)
	}
}

func TestJoinWeightsByFreeSlots(t *testing.T) {
	// AttachHold tiny so pending attaches do not build up: this measures the
	// weighting alone.
	r := newTestRegistry(t, Config{AttachHold: time.Nanosecond})
	register(t, r, t0, 1, proto.Load{Capacity: 10, Leaves: 9}) // 1 free
	register(t, r, t0, 2, proto.Load{Capacity: 10})            // 10 free
	first := map[proto.PeerID]int{}
	for i := range 2000 {
		first[r.Join(t0.Add(time.Duration(i)), pid(99), proto.RoleLeaf, "x:1").Supernodes[0].ID]++
	}
	// Expected 1/11 and 10/11 of 2000: about 182 and 1818.
	if first[pid(1)] < 120 || first[pid(1)] > 250 {
		t.Fatalf("first choices %v: want about 1 in 11 for the supernode with 1 free slot of 11", first)
	}
}

func TestJoinBurstSpreads(t *testing.T) {
	r := newTestRegistry(t, Config{})
	for i := 1; i <= 3; i++ {
		register(t, r, t0, i, proto.Load{Capacity: 10})
	}
	first := map[proto.PeerID]int{}
	for i := range 30 {
		reply := r.Join(t0.Add(time.Duration(i)*10*time.Millisecond), pid(100+i), proto.RoleUnknown, "x:1")
		if reply.Become != proto.RoleUnknown {
			t.Fatalf("join %d told to become %s while there is room", i, reply.Become)
		}
		first[reply.Supernodes[0].ID]++
	}
	for id, n := range first {
		if n > 15 {
			t.Fatalf("supernode %s handed out first %d times of 30 (%v); the burst did not spread", id.Short(), n, first)
		}
	}
	if len(first) != 3 {
		t.Fatalf("first choices %v: want all three supernodes used", first)
	}
	if st := r.Snapshot(t0.Add(time.Second)); st.Supernodes[0].PendingAttaches == 0 {
		t.Fatalf("snapshot shows no pending attaches: %+v", st.Supernodes)
	}
	// The pending attaches lapse after AttachHold: room again.
	reply := r.Join(t0.Add(3*time.Second), pid(201), proto.RoleUnknown, "x:1")
	if reply.Become != proto.RoleUnknown || len(reply.Supernodes) != 3 {
		t.Fatalf("after AttachHold: %+v, want a plain list of the 3 supernodes", reply)
	}
}

// TestJoinNeverPromotesAutoNodes: an auto node gets the list, like a leaf,
// even in an empty or full network; the promotion planner asks nodes to
// step up (promotion.go), not the join.
func TestJoinNeverPromotesAutoNodes(t *testing.T) {
	r := newTestRegistry(t, Config{})
	a := pid(1)
	if reply := r.Join(t0, pid(2), proto.RoleUnknown, "x:1"); reply.Become != proto.RoleUnknown || len(reply.Supernodes) != 0 {
		t.Fatalf("auto node in an empty network: %+v, want an empty list", reply)
	}
	if _, err := r.Register(t0, a, nil, "10.0.0.1:7400", proto.Load{Leaves: 1, Capacity: 1}); err != nil {
		t.Fatal(err)
	}
	reply := r.Join(t0, pid(3), proto.RoleUnknown, "x:1")
	if reply.Become != proto.RoleUnknown || !slices.Equal(ids(reply.Supernodes), []proto.PeerID{a}) {
		t.Fatalf("auto node with no room anywhere: %+v, want the full supernode a", reply)
	}
}

func TestJoinRoleSupernode(t *testing.T) {
	r := newTestRegistry(t, Config{MeshPeers: 2})
	for i := 1; i <= 4; i++ {
		register(t, r, t0, i, proto.Load{Capacity: 100})
	}
	// There is room: a node started as supernode is a supernode regardless.
	for _, from := range []proto.PeerID{pid(60), pid(1)} {
		reply := r.Join(t0, from, proto.RoleSupernode, "x:1")
		if reply.Become != proto.RoleSupernode || len(reply.Supernodes) != 2 {
			t.Fatalf("role-supernode joiner %s: %+v, want become supernode with 2 mesh peers", from.Short(), reply)
		}
		if slices.Contains(ids(reply.Supernodes), from) {
			t.Fatalf("mesh peers %v include the joiner", ids(reply.Supernodes))
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Heartbeat: 2 * time.Second, Expiry: time.Second}, "Expiry"},
		{Config{MeshPeers: -1}, "MeshPeers"},
		{Config{JoinReplySize: proto.MaxPeers + 1}, "JoinReplySize"},
		{Config{AttachHold: -time.Second}, "AttachHold"},
	} {
		_, err := NewRegistry(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
	if _, err := NewRegistry(Config{}); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
}
