package promotion

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/strata-p2p/strata/proto"
)

func newTestPlanner(t *testing.T, cfg Config) *Planner {
	t.Helper()
	cfg.Logger = zaptest.NewLogger(t)
	p, err := NewPlanner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// measured is a reachable node the server has known for two hours with
// upload up (download four times that).
func measured(up float64) Measured {
	return Measured{Reachable: proto.ReachPublic, UpBps: up, DownBps: 4 * up, Seen: 2 * time.Hour}
}

func ids(rs []Ranked) []proto.PeerID {
	var out []proto.PeerID
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func TestPlannerNeed(t *testing.T) {
	p := newTestPlanner(t, Config{})
	for _, tc := range []struct{ leaves, need, keep int }{
		{0, 1, 1}, {1, 1, 1}, {24, 1, 2}, {25, 2, 2}, {30, 2, 2}, {100, 5, 5}, {1000, 42, 50},
	} {
		if got := p.Need(tc.leaves); got != tc.need {
			t.Errorf("Need(%d) = %d, want %d (ratio 30, headroom 25%%)", tc.leaves, got, tc.need)
		}
		if got := p.keep(tc.leaves); got != tc.keep {
			t.Errorf("keep(%d) = %d, want %d", tc.leaves, got, tc.keep)
		}
	}
	kazaa := newTestPlanner(t, Config{LeavesPerSupernode: 100, Headroom: -1, MinSupernodes: 2})
	if got := kazaa.Need(250); got != 3 {
		t.Errorf("ratio 100, no headroom: Need(250) = %d, want 3", got)
	}
	if got := kazaa.Need(10); got != 2 {
		t.Errorf("MinSupernodes 2: Need(10) = %d", got)
	}
}

// TestPlannerStepUp: the best reachable candidates are asked, as many as
// bring the network to its need (counting that they stop being leaves);
// unreachable, unknown and declining candidates never are; those the
// server has known for MinUptime come before younger ones.
func TestPlannerStepUp(t *testing.T) {
	p := newTestPlanner(t, Config{})
	cands := []Candidate{
		{ID: peer(1), Measured: measured(50_000)},
		{ID: peer(2), Measured: Measured{Reachable: proto.ReachUnreachable, UpBps: 1e9, DownBps: 1e9, Seen: 100 * time.Hour}},
		{ID: peer(3), Measured: measured(400_000)},
		{ID: peer(4), Measured: Measured{Reachable: proto.ReachUnknown, UpBps: 1e9, DownBps: 1e9, Seen: 100 * time.Hour}},
		{ID: peer(5), Measured: measured(300_000), Declined: true},
		{ID: peer(6), Measured: measured(200_000)},
		{ID: peer(7), Measured: Measured{Reachable: proto.ReachPublic, UpBps: 900_000, DownBps: 3_600_000, Seen: 10 * time.Minute}},
		{ID: peer(8), Measured: measured(100_000)},
		{ID: peer(9), Measured: measured(20_000)},
	}
	net := Network{Supernodes: []Supernode{{ID: peer(100), Measured: measured(100_000), Leaves: 30}}, Candidates: cands, Leaves: 100}
	pl := p.Plan(t0, net)
	// 1 supernode, 100 leaves: 4 more make 5 for 96 leaves (Need 4 ≤ 5;
	// 3 more would be 4 for 97, Need 5).
	want := []proto.PeerID{peer(3), peer(6), peer(8), peer(1)}
	if !slices.Equal(ids(pl.StepUp), want) || pl.Need != 4 || pl.Supernodes != 1 {
		t.Fatalf("step up %v (need %d), want %v", ids(pl.StepUp), pl.Need, want)
	}
	if d := pl.Demand(peer(3)); d.Ask != AskStepUp || d.AcceptYoung || d.Leaves != 100 || d.Supernodes != 1 {
		t.Errorf("demand for an asked node: %+v", d)
	}
	if d := pl.Demand(peer(2)); d.Ask != AskNone {
		t.Errorf("demand for the unreachable node: %+v", d)
	}
	// Without the older candidates, the young strong one is asked, with
	// the uptime gate waived.
	net.Candidates = []Candidate{cands[6], cands[1]}
	pl = newTestPlanner(t, Config{}).Plan(t0, net)
	if !slices.Equal(ids(pl.StepUp), []proto.PeerID{peer(7)}) || !pl.Demand(peer(7)).AcceptYoung {
		t.Errorf("young only: %+v", pl.StepUp)
	}
}

// TestPlannerEmptyNetwork: nodes join a network with no supernode at all
// and no leaf attached: the candidates count as leaves, and the best are
// asked.
func TestPlannerEmptyNetwork(t *testing.T) {
	p := newTestPlanner(t, Config{})
	var cands []Candidate
	for i := range 12 {
		m := measured(float64(10_000 * (i + 1)))
		m.Seen = time.Second
		cands = append(cands, Candidate{ID: peer(i), Measured: m})
	}
	pl := p.Plan(t0, Network{Candidates: cands})
	if !slices.Equal(ids(pl.StepUp), []proto.PeerID{peer(11)}) || !pl.Demand(peer(11)).AcceptYoung {
		t.Fatalf("empty network: %+v", pl)
	}
}

// TestPlannerStepDown: too many supernodes: idle ones are asked first
// (longest idle first), then the weakest; none promoted within
// MinInterval; never below MinSupernodes.
func TestPlannerStepDown(t *testing.T) {
	p := newTestPlanner(t, Config{})
	sns := []Supernode{
		{ID: peer(1), Measured: measured(900_000), Leaves: 0}, // strong but idle
		{ID: peer(2), Measured: measured(20_000), Leaves: 15}, // weakest
		{ID: peer(3), Measured: measured(300_000), Leaves: 15},
		{ID: peer(4), Measured: measured(400_000), Leaves: 15},
		{ID: peer(5), Measured: measured(500_000), Leaves: 15},
		{ID: peer(6), Measured: measured(600_000), Leaves: 0}, // idle too, but later
	}
	p.Plan(t0, Network{Supernodes: sns[:5], Leaves: 60})
	p.Plan(t0.Add(10*time.Minute), Network{Supernodes: sns, Leaves: 60}) // peer 6 arrives
	// Two hours on: 6 supernodes for 60 leaves; keep(62) = 4, so 2 go.
	pl := p.Plan(t0.Add(2*time.Hour), Network{Supernodes: sns, Leaves: 60})
	want := []proto.PeerID{peer(1), peer(6)}
	if !slices.Equal(ids(pl.StepDown), want) || !pl.StepDown[0].Idle {
		t.Fatalf("step down %v, want the idle ones %v", pl.StepDown, want)
	}
	if d := pl.Demand(peer(1)); d.Ask != AskStepDown {
		t.Errorf("demand: %+v", d)
	}
	// Leaves now on all: the weakest go first.
	for i := range sns {
		sns[i].Leaves = 10
	}
	pl = p.Plan(t0.Add(3*time.Hour), Network{Supernodes: sns, Leaves: 60})
	if !slices.Equal(ids(pl.StepDown), []proto.PeerID{peer(2), peer(3)}) {
		t.Fatalf("no idle ones: step down %v, want the weakest 2 and 3", ids(pl.StepDown))
	}
	// No leaves at all: down to MinSupernodes, never below.
	pl = p.Plan(t0.Add(4*time.Hour), Network{Supernodes: sns})
	if len(pl.StepDown) != 5 || slices.Contains(ids(pl.StepDown), peer(1)) {
		t.Fatalf("no leaves: step down %+v, want all but the strongest (1)", pl.StepDown)
	}
	// A supernode that stepped up within MinInterval is not asked down.
	fresh := Supernode{ID: peer(50), Measured: measured(1_000), Leaves: 0}
	pl = p.Plan(t0.Add(5*time.Hour), Network{Supernodes: append(slices.Clone(sns), fresh)})
	if slices.Contains(ids(pl.StepDown), peer(50)) {
		t.Errorf("a supernode of a few minutes asked to step down: %v", ids(pl.StepDown))
	}
}

// TestPlannerUnreachableSupernode: a supernode the server cannot dial is
// asked down whatever the demand, unless it is the last one.
func TestPlannerUnreachableSupernode(t *testing.T) {
	p := newTestPlanner(t, Config{})
	bad := Supernode{ID: peer(1), Measured: Measured{Reachable: proto.ReachUnreachable, UpBps: 1e6, DownBps: 1e6}}
	good := Supernode{ID: peer(2), Measured: measured(100_000), Leaves: 20}
	pl := p.Plan(t0, Network{Supernodes: []Supernode{bad, good}, Leaves: 20})
	if !slices.Equal(ids(pl.StepDown), []proto.PeerID{peer(1)}) || pl.Supernodes != 1 {
		t.Fatalf("step down %v, supernodes %d", ids(pl.StepDown), pl.Supernodes)
	}
	if pl = p.Plan(t0, Network{Supernodes: []Supernode{bad}, Leaves: 20}); len(pl.StepDown) != 0 {
		t.Fatalf("the last supernode asked down: %v", ids(pl.StepDown))
	}
}

// TestPlannerDeclineAndTimeout: a candidate that declines, or stays asked
// for AskTimeout without stepping up, is left alone for DeclineHold and the
// next best is asked.
func TestPlannerDeclineAndTimeout(t *testing.T) {
	p := newTestPlanner(t, Config{AskTimeout: 5 * time.Minute, DeclineHold: 10 * time.Minute})
	sn := []Supernode{{ID: peer(100), Measured: measured(100_000), Leaves: 30}}
	a, b, c := Candidate{ID: peer(1), Measured: measured(300_000)}, Candidate{ID: peer(2), Measured: measured(200_000)}, Candidate{ID: peer(3), Measured: measured(100_000)}
	net := func(cs ...Candidate) Network { return Network{Supernodes: sn, Candidates: cs, Leaves: 37} }
	first := func(pl Plan) proto.PeerID {
		if len(pl.StepUp) != 1 {
			t.Fatalf("step up %v, want one", ids(pl.StepUp))
		}
		return pl.StepUp[0].ID
	}
	if got := first(p.Plan(t0, net(a, b, c))); got != peer(1) {
		t.Fatalf("asked %v", got)
	}
	// a declines: b is asked at once.
	a.Declined = true
	if got := first(p.Plan(t0.Add(time.Minute), net(a, b, c))); got != peer(2) {
		t.Fatalf("after a declined, asked %v", got)
	}
	a.Declined = false
	// b never steps up: after AskTimeout c is asked (a still held).
	for m := 2; m <= 6; m++ {
		p.Plan(t0.Add(time.Duration(m)*time.Minute), net(a, b, c))
	}
	if got := first(p.Plan(t0.Add(7*time.Minute), net(a, b, c))); got != peer(3) {
		t.Fatalf("after b timed out, asked %v", got)
	}
	// a's hold is over: asked again.
	if got := first(p.Plan(t0.Add(12*time.Minute), net(a, b, c))); got != peer(1) {
		t.Fatalf("after a's hold, asked %v", got)
	}
}

// TestPlannerSticky: measurement noise that swaps two close candidates
// does not move the ask from one to the other.
func TestPlannerSticky(t *testing.T) {
	p := newTestPlanner(t, Config{})
	sn := []Supernode{{ID: peer(100), Measured: measured(100_000), Leaves: 30}}
	for i := range 20 {
		x, y := 200_000.0, 190_000.0
		if i%2 == 1 {
			x, y = y, x // noise
		}
		cs := []Candidate{{ID: peer(1), Measured: measured(x)}, {ID: peer(2), Measured: measured(y)}}
		pl := p.Plan(t0.Add(time.Duration(i)*10*time.Second), Network{Supernodes: sn, Candidates: cs, Leaves: 37})
		if !slices.Equal(ids(pl.StepUp), []proto.PeerID{peer(1)}) {
			t.Fatalf("round %d: asked %v, want peer 1 throughout", i, ids(pl.StepUp))
		}
	}
}

// TestPlannerNoFlapping: the leaf count wanders across a boundary of the
// ratio every plan, and asked nodes change role at once. The band between
// Need and Keep and the per-node interval keep role changes rare: once the
// network has what it needs, nobody moves.
func TestPlannerNoFlapping(t *testing.T) {
	p := newTestPlanner(t, Config{MinInterval: 30 * time.Minute})
	role := map[proto.PeerID]bool{} // true: supernode
	for i := range 40 {
		role[peer(i)] = i < 4
	}
	changes := 0
	for r := range 24 * 60 { // a plan a minute for a day
		leaves := 100 + 30*(r%2) // 100, 130, 100, ...: Need 5 then 6
		var net Network
		for i := range 40 {
			id := peer(i)
			if role[id] {
				net.Supernodes = append(net.Supernodes, Supernode{ID: id, Measured: measured(float64(100_000 + i)), Leaves: 25})
			} else {
				net.Candidates = append(net.Candidates, Candidate{ID: id, Measured: measured(float64(100_000 + i))})
			}
		}
		net.Leaves = leaves
		pl := p.Plan(t0.Add(time.Duration(r)*time.Minute), net)
		for _, x := range pl.StepUp {
			role[x.ID] = true
			changes++
		}
		for _, x := range pl.StepDown {
			role[x.ID] = false
			changes++
		}
	}
	if changes > 2 {
		t.Errorf("%d role changes in a day with the leaf count wandering 100↔130, want at most 2", changes)
	}
}

// TestClaimsIgnored: nothing a node says about its own capacity can reach
// the decisions. The planner's inputs hold only what the server measured
// (and a decline, which only lowers a node's chances); a node's policy takes
// its own measurements and the server's demand. No input type holds a
// Capacity, a proto.Load or a proto.PeerInfo.
func TestClaimsIgnored(t *testing.T) {
	forbidden := []reflect.Type{reflect.TypeFor[Capacity](), reflect.TypeFor[proto.Load](), reflect.TypeFor[proto.PeerInfo]()}
	var walk func(path string, ty reflect.Type)
	walk = func(path string, ty reflect.Type) {
		for _, f := range forbidden {
			if ty == f {
				t.Errorf("%s is a %v: a self-reported capacity could reach the decision", path, ty)
			}
		}
		switch ty.Kind() {
		case reflect.Struct:
			for i := range ty.NumField() {
				walk(path+"."+ty.Field(i).Name, ty.Field(i).Type)
			}
		case reflect.Slice, reflect.Array, reflect.Pointer:
			walk(path+"[]", ty.Elem())
		}
	}
	walk("Network", reflect.TypeFor[Network]())
	walk("Demand", reflect.TypeFor[Demand]())
	// Decide takes the time and a Demand, nothing else.
	if m, _ := reflect.TypeFor[*Policy]().MethodByName("Decide"); m.Type.NumIn() != 3 || m.Type.In(2) != reflect.TypeFor[Demand]() {
		t.Errorf("Policy.Decide is %v", m.Type)
	}

	// Behaviour: supernodes over-reporting their leaves ask nobody more
	// to step up; only the server's own leaf count does.
	base := Network{Leaves: 50,
		Supernodes: []Supernode{{ID: peer(1), Measured: measured(100_000), Leaves: 25}, {ID: peer(2), Measured: measured(100_000), Leaves: 25}},
		Candidates: []Candidate{{ID: peer(3), Measured: measured(100_000)}, {ID: peer(4), Measured: measured(90_000)}}}
	liar := base
	liar.Supernodes = []Supernode{{ID: peer(1), Measured: measured(100_000), Leaves: 1 << 30}, {ID: peer(2), Measured: measured(100_000), Leaves: 1 << 30}}
	a, b := newTestPlanner(t, Config{}).Plan(t0, base), newTestPlanner(t, Config{}).Plan(t0, liar)
	if !slices.Equal(ids(a.StepUp), ids(b.StepUp)) || a.Need != b.Need {
		t.Errorf("inflated leaf reports changed the plan: %+v vs %+v", a, b)
	}
}

// TestPlannerBounded: the planner forgets nodes gone for MinInterval, and
// never remembers more than MaxTracked.
func TestPlannerBounded(t *testing.T) {
	p := newTestPlanner(t, Config{MaxTracked: 100, MinInterval: time.Hour})
	for r := range 50 {
		var cs []Candidate
		for i := range 30 {
			cs = append(cs, Candidate{ID: peer(r*30 + i), Measured: measured(10_000)})
		}
		p.Plan(t0.Add(time.Duration(r)*time.Minute), Network{Candidates: cs, Supernodes: []Supernode{{ID: peer(9999), Measured: measured(1), Leaves: 1}}})
		if len(p.nodes) > 100 {
			t.Fatalf("round %d: %d nodes remembered, cap 100", r, len(p.nodes))
		}
	}
	p.Plan(t0.Add(5*time.Hour), Network{})
	if len(p.nodes) != 0 {
		t.Errorf("%d nodes remembered hours after they left", len(p.nodes))
	}
}

// TestPlannerSwap: a supernode count within the band, but the best
// candidate far stronger than the weakest supernode: the candidate is asked
// to step up; once it serves, the weak one is asked down. A candidate only
// a little stronger, or a pinned weak supernode, changes nothing.
func TestPlannerSwap(t *testing.T) {
	p := newTestPlanner(t, Config{MinInterval: time.Minute})
	weak, strong, other := proto.PeerID{1}, proto.PeerID{2}, proto.PeerID{3}
	now := time.Unix(1_800_000_000, 0)
	net := func(sns ...Supernode) Network {
		return Network{Supernodes: sns, Leaves: 10, Candidates: []Candidate{
			{ID: strong, Measured: measured(1_000_000)}, {ID: other, Measured: measured(25_000)}}}
	}
	weakSN := Supernode{ID: weak, Measured: measured(20_000), Leaves: 10}
	p.Plan(now, net(weakSN)) // weak has been a supernode since now
	if pl := p.Plan(now.Add(30*time.Second), net(weakSN)); len(pl.StepUp) > 0 {
		t.Fatalf("swap within MinInterval of the weak one stepping up: %+v", pl)
	}
	pl := p.Plan(now.Add(2*time.Minute), net(weakSN))
	if !slices.Equal(ids(pl.StepUp), []proto.PeerID{strong}) || len(pl.StepDown) > 0 {
		t.Fatalf("plan %+v: want strong asked up, nobody down", pl)
	}
	// strong serves: one supernode too many, the weak one goes.
	both := Network{Supernodes: []Supernode{weakSN, {ID: strong, Measured: measured(1_000_000)}}, Leaves: 9,
		Candidates: []Candidate{{ID: other, Measured: measured(25_000)}}}
	pl = p.Plan(now.Add(3*time.Minute), both)
	if !slices.Equal(ids(pl.StepDown), []proto.PeerID{weak}) || len(pl.StepUp) > 0 {
		t.Fatalf("plan %+v: want weak asked down", pl)
	}

	p2 := newTestPlanner(t, Config{MinInterval: time.Minute})
	near := Network{Supernodes: []Supernode{weakSN}, Leaves: 10, Candidates: []Candidate{{ID: other, Measured: measured(25_000)}}}
	p2.Plan(now, near)
	if pl := p2.Plan(now.Add(2*time.Minute), near); len(pl.StepUp) > 0 {
		t.Fatalf("a candidate 1.25 times stronger swapped in: %+v", pl)
	}
	p3 := newTestPlanner(t, Config{MinInterval: time.Minute})
	pinned := weakSN
	pinned.Pinned = true
	p3.Plan(now, net(pinned))
	if pl := p3.Plan(now.Add(2*time.Minute), net(pinned)); len(pl.StepUp) > 0 {
		t.Fatalf("swap against a pinned supernode: %+v", pl)
	}
}
