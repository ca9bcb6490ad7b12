package promotion

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/strata-p2p/strata/proto"
)

// strong is a node that passes every gate by far.
func strong() Capacity {
	return Capacity{UpBps: 500_000, DownBps: 2_000_000, Cores: 4, IndexOpsPerSec: 1e6, MemBytes: 2 << 30,
		Load1: 0.1, Uptime: 2 * time.Hour, Reachable: proto.ReachPublic}
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newTestPolicy(t *testing.T, cfg Config, role proto.Role) *Policy {
	t.Helper()
	cfg.Logger = zaptest.NewLogger(t)
	p, err := NewPolicy(cfg, role)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	askUp   = Demand{Ask: AskStepUp, Supernodes: 3}
	askDown = Demand{Ask: AskStepDown, Supernodes: 3}
	noAsk   = Demand{Supernodes: 3}
)

func TestPolicyStepsUpOnlyWhenAsked(t *testing.T) {
	p := newTestPolicy(t, Config{}, proto.RoleUnknown)
	if p.Role() != proto.RoleLeaf {
		t.Fatalf("auto starts as %v", p.Role())
	}
	if d := p.Decide(t0, askUp); d.Action != Stay || d.Reason != "no measurement yet" {
		t.Fatalf("before any measurement: %+v", d)
	}
	p.Observe(t0, strong())
	for i := range 10 {
		if d := p.Decide(t0.Add(time.Duration(i)*time.Minute), noAsk); d.Action != Stay || !d.Eligible || d.Decline {
			t.Fatalf("eligible, not asked: %+v", d)
		}
	}
	// Confidence 2: the first ask waits, the second acts.
	d := p.Decide(t0.Add(time.Hour), askUp)
	if d.Action != Stay || d.Want != Promote || d.Blocked != "confidence" || d.Streak != 1 || d.Decline {
		t.Fatalf("first ask: %+v", d)
	}
	d = p.Decide(t0.Add(time.Hour+time.Minute), askUp)
	if d.Action != Promote || p.Role() != proto.RoleSupernode {
		t.Fatalf("second ask: %+v", d)
	}
	if d.Score <= 0 || len(d.Gates) != 7 || d.Capacity.UpBps != 500_000 || d.Demand != askUp {
		t.Errorf("decision does not carry its inputs: %+v", d)
	}
}

func TestPolicyConfidence(t *testing.T) {
	p := newTestPolicy(t, Config{Confidence: 4}, proto.RoleLeaf)
	p.Observe(t0, strong())
	now := t0
	step := func(d Demand) Decision { now = now.Add(time.Minute); return p.Decide(now, d) }
	for range 3 {
		step(askUp)
	}
	// A break in the asks resets the streak.
	if d := step(noAsk); d.Streak != 0 {
		t.Fatalf("streak after a break = %d", d.Streak)
	}
	for i := 1; i <= 3; i++ {
		if d := step(askUp); d.Action != Stay || d.Streak != i {
			t.Fatalf("ask %d: %+v", i, d)
		}
	}
	if d := step(askUp); d.Action != Promote || d.Streak != 4 {
		t.Fatalf("fourth ask in a row: %+v", d)
	}
}

// TestPolicyUnreachableNeverPromoted: the strongest node that cannot be
// dialled (or whose reachability is unknown) never steps up, however long
// and however urgently it is asked.
func TestPolicyUnreachableNeverPromoted(t *testing.T) {
	for _, r := range []proto.Reachability{proto.ReachUnreachable, proto.ReachUnknown} {
		p := newTestPolicy(t, Config{}, proto.RoleLeaf)
		c := strong()
		c.UpBps, c.DownBps, c.Cores, c.Reachable = 1e9, 1e9, 64, r
		for i := range 500 {
			now := t0.Add(time.Duration(i) * time.Minute)
			p.Observe(now, c)
			d := p.Decide(now, Demand{Ask: AskStepUp, AcceptYoung: true, Supernodes: 0})
			if d.Action != Stay || p.Role() != proto.RoleLeaf || !d.Decline {
				t.Fatalf("%v node asked to step up: %+v", r, d)
			}
		}
		if !p.Declining(t0.Add(time.Hour)) {
			t.Errorf("%v node not declining", r)
		}
	}
}

// TestPolicyGates: each gate alone keeps a leaf from stepping up, and is
// named in the decision.
func TestPolicyGates(t *testing.T) {
	for gate, spoil := range map[string]func(*Capacity){
		"upload":   func(c *Capacity) { c.UpBps = 9_000 },
		"download": func(c *Capacity) { c.DownBps = 19_000 },
		"cores":    func(c *Capacity) { c.Cores = 0.5 },
		"memory":   func(c *Capacity) { c.MemBytes = 100 << 20 },
		"load":     func(c *Capacity) { c.Load1 = 3 },
		"uptime":   func(c *Capacity) { c.Uptime, c.AvgSession = 20*time.Minute, 50*time.Minute },
	} {
		p := newTestPolicy(t, Config{Confidence: 1}, proto.RoleLeaf)
		c := strong()
		spoil(&c)
		p.Observe(t0, c)
		d := p.Decide(t0, askUp)
		var failed []string
		for _, g := range d.Gates {
			if !g.OK {
				failed = append(failed, g.Name)
			}
		}
		if d.Action != Stay || d.Eligible || !d.Decline || len(failed) != 1 || failed[0] != gate {
			t.Errorf("%s: action %v eligible %v decline %v failed %v", gate, d.Action, d.Eligible, d.Decline, failed)
		}
		// Declining ahead of an ask: every gate but uptime (which the
		// server may waive).
		if got := p.Declining(t0); got != (gate != "uptime") {
			t.Errorf("%s: Declining = %v", gate, got)
		}
	}
}

func TestPolicyUptimeGate(t *testing.T) {
	young := strong()
	young.Uptime = 5 * time.Minute
	p := newTestPolicy(t, Config{Confidence: 1}, proto.RoleLeaf)
	p.Observe(t0, young)
	if d := p.Decide(t0, askUp); d.Action != Stay || !d.Decline {
		t.Fatalf("young node stepped up without a waiver: %+v", d)
	}
	// The server had nobody older: waived.
	if d := p.Decide(t0.Add(time.Minute), Demand{Ask: AskStepUp, AcceptYoung: true}); d.Action != Promote {
		t.Fatalf("waived: %+v", d)
	}
	// A node that usually stays long counts as old after a restart.
	p = newTestPolicy(t, Config{Confidence: 1}, proto.RoleLeaf)
	young.AvgSession = 3 * time.Hour
	p.Observe(t0, young)
	if d := p.Decide(t0, askUp); d.Action != Promote {
		t.Fatalf("long average session: %+v", d)
	}
}

// TestPolicyHoldDownAndBackoff: no role change within MinInterval of the
// last; changes in quick succession double the hold-down up to MaxBackoff;
// a quiet spell resets it.
func TestPolicyHoldDownAndBackoff(t *testing.T) {
	const minI = 10 * time.Minute
	p := newTestPolicy(t, Config{Confidence: 1, MinInterval: minI, MaxBackoff: 40 * time.Minute}, proto.RoleLeaf)
	p.Observe(t0, strong())
	// The bootstrap server flips its ask every minute (a hostile or buggy
	// one); record when the role changes.
	var changes []time.Time
	for i := range 24 * 60 {
		now := t0.Add(time.Duration(i) * time.Minute)
		d := askUp
		if p.Role() == proto.RoleSupernode {
			d = askDown
		}
		if dec := p.Decide(now, d); dec.Action != Stay {
			changes = append(changes, now)
		} else if dec.Blocked == "hold-down" && dec.Want == Promote && !dec.Decline {
			t.Fatalf("a leaf in hold-down does not decline: %+v", dec)
		}
	}
	want := []time.Duration{0, 10, 30, 70, 110, 150} // holds: 10, 20, 40, 40, 40 min
	for i, w := range want {
		if i >= len(changes) || changes[i].Sub(t0) != w*time.Minute {
			t.Fatalf("change times = %v, want the first at +%v", offsets(changes), want)
		}
	}
	for i := 1; i < len(changes); i++ {
		if gap := changes[i].Sub(changes[i-1]); gap < minI {
			t.Fatalf("changes %v apart", gap)
		}
	}
	// Quiet for more than twice the hold: the next change resets it.
	p2 := newTestPolicy(t, Config{Confidence: 1, MinInterval: minI, MaxBackoff: 40 * time.Minute}, proto.RoleLeaf)
	p2.Observe(t0, strong())
	p2.Decide(t0, askUp)
	p2.Decide(t0.Add(10*time.Minute), askDown) // hold → 20 min
	p2.Decide(t0.Add(5*time.Hour), askUp)      // long after: hold back to 10 min
	if st := p2.Status(); st.Hold != minI || st.Changes != 3 {
		t.Errorf("after a quiet spell hold = %v, changes %d", st.Hold, st.Changes)
	}
}

func offsets(ts []time.Time) []time.Duration {
	var out []time.Duration
	for _, t := range ts {
		out = append(out, t.Sub(t0))
	}
	return out
}

// TestPolicyNoisyThreshold: a node whose measured upload wanders around
// the step-up threshold (one measurement and decision every 10 s for a
// day), asked to step up whenever it is a leaf, with other supernodes
// around so weakness alone could demote it. Whatever the noise, the role
// never changes twice within MinInterval. With 15% noise the stay band and
// the smoothing absorb it: one step up, no step down. With 30% the band is
// crossed now and then, and the backoff spaces the flips out. Without band,
// smoothing and confidence it flips as often as the hold-down lets it.
func TestPolicyNoisyThreshold(t *testing.T) {
	const minI = 30 * time.Minute
	run := func(cfg Config, noise float64) []time.Time {
		p := newTestPolicy(t, cfg, proto.RoleLeaf)
		rng := rand.New(rand.NewPCG(1, 2))
		var changes []time.Time
		for i := range 24 * 360 {
			now := t0.Add(time.Duration(i) * 10 * time.Second)
			c := strong()
			c.UpBps = p.cfg.MinUpBps * (1.05 + noise*rng.NormFloat64())
			p.Observe(now, c)
			d := noAsk
			if p.Role() == proto.RoleLeaf {
				d = askUp
			}
			if dec := p.Decide(now, d); dec.Action != Stay {
				changes = append(changes, now)
			}
		}
		for i := 1; i < len(changes); i++ {
			if gap := changes[i].Sub(changes[i-1]); gap < minI {
				t.Fatalf("%+v, noise %v: changes only %v apart", cfg, noise, gap)
			}
		}
		return changes
	}
	on := Config{MinInterval: minI}
	off := Config{MinInterval: minI, MaxBackoff: minI, Confidence: 1, StayFraction: 1, Smoothing: 1}
	if ch := run(on, 0.15); len(ch) != 1 {
		t.Errorf("15%% noise, hysteresis: %d role changes in a day at %v, want 1", len(ch), offsets(ch))
	}
	onHigh, offHigh := run(on, 0.3), run(off, 0.3)
	if offLow := run(off, 0.15); len(offLow) < 10 {
		t.Errorf("15%% noise without hysteresis: only %d changes; the test's noise shows nothing", len(offLow))
	}
	if 3*len(onHigh) > len(offHigh) {
		t.Errorf("30%% noise: %d changes with hysteresis, %d without; want at most a third", len(onHigh), len(offHigh))
	}
	t.Logf("30%% noise: %d changes with hysteresis (at %v), %d without", len(onHigh), offsets(onHigh), len(offHigh))
}

// TestPolicyUnreachableSupernode: a supernode that turns unreachable steps
// down even in hold-down (it serves nobody), after the confidence count.
func TestPolicyUnreachableSupernode(t *testing.T) {
	p := newTestPolicy(t, Config{}, proto.RoleLeaf)
	p.Observe(t0, strong())
	p.Decide(t0, askUp)
	if p.Decide(t0.Add(time.Second), askUp).Action != Promote {
		t.Fatal("not promoted")
	}
	c := strong()
	c.Reachable = proto.ReachUnreachable
	p.Observe(t0.Add(time.Minute), c)
	if d := p.Decide(t0.Add(time.Minute), noAsk); d.Action != Stay || d.Blocked != "confidence" {
		t.Fatalf("one unreachable measurement: %+v", d)
	}
	if d := p.Decide(t0.Add(2*time.Minute), noAsk); d.Action != Demote || !strings.Contains(d.Reason, "unreachable") {
		t.Fatalf("unreachable supernode in hold-down: %+v", d)
	}
}

// TestPolicyLastSupernode: a supernode below the stay band steps down only
// if the network has other supernodes.
func TestPolicyLastSupernode(t *testing.T) {
	weak := strong()
	weak.UpBps = 5_000 // below 0.7 × 10 kB/s
	for _, tc := range []struct {
		supernodes int
		want       Action
	}{{0, Stay}, {1, Stay}, {2, Demote}} {
		p := newTestPolicy(t, Config{Confidence: 1}, proto.RoleSupernode)
		p.Observe(t0, weak)
		if d := p.Decide(t0, Demand{Supernodes: tc.supernodes}); d.Action != tc.want {
			t.Errorf("%d supernodes known: %v (%s), want %v", tc.supernodes, d.Action, d.Reason, tc.want)
		}
	}
	// Within the band (between 0.7 and 1 × the thresholds) it stays.
	p := newTestPolicy(t, Config{Confidence: 1}, proto.RoleSupernode)
	mid := strong()
	mid.UpBps = 8_000
	p.Observe(t0, mid)
	if d := p.Decide(t0, Demand{Supernodes: 5}); d.Action != Stay || !d.Eligible {
		t.Errorf("in the band: %+v", d)
	}
}

func TestPolicySetRole(t *testing.T) {
	p := newTestPolicy(t, Config{Confidence: 1}, proto.RoleLeaf)
	p.Observe(t0, strong())
	p.Decide(t0, askUp)
	// The supernode role failed to start: back to leaf, and in hold-down.
	p.SetRole(t0.Add(time.Second), proto.RoleLeaf, "supernode role failed to start")
	if p.Role() != proto.RoleLeaf || !p.Declining(t0.Add(time.Minute)) {
		t.Fatalf("after SetRole: role %v declining %v", p.Role(), p.Declining(t0.Add(time.Minute)))
	}
	st := p.Status()
	if last := st.Decisions[len(st.Decisions)-1]; last.Action != Demote || !strings.HasPrefix(last.Reason, "set: ") {
		t.Errorf("SetRole not recorded: %+v", last)
	}
	if d := p.Decide(t0.Add(2*time.Minute), askUp); d.Action != Stay || d.Blocked != "hold-down" || !d.Decline {
		t.Errorf("asked again in hold-down: %+v", d)
	}
}

// TestPolicyHistory: the decision history is bounded, folds identical
// decisions, and marshals for `strata status`.
func TestPolicyHistory(t *testing.T) {
	p := newTestPolicy(t, Config{Confidence: 1, MinInterval: time.Minute}, proto.RoleLeaf)
	p.Observe(t0, strong())
	for i := range 1000 {
		now := t0.Add(time.Duration(i) * 20 * time.Second)
		d := noAsk
		if i%10 == 9 {
			d = askUp
			if p.Role() == proto.RoleSupernode {
				d = askDown
			}
		}
		p.Decide(now, d)
	}
	st := p.Status()
	if len(st.Decisions) != 50 {
		t.Fatalf("%d decisions kept, want 50", len(st.Decisions))
	}
	folded := 0
	for i, r := range st.Decisions {
		if r.Repeats > 1 {
			folded++
		}
		if i > 0 && r.FirstAt.Before(st.Decisions[i-1].At) {
			t.Fatalf("history out of order at %d", i)
		}
	}
	if folded == 0 {
		t.Error("no identical decisions folded")
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"action":"promote"`, `"ask":"step-up"`, `"reachable":"reachable"`, `"name":"upload"`, `"role":"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status JSON lacks %s", want)
		}
	}
}

func TestPolicyObserveSmoothsAndCleans(t *testing.T) {
	p := newTestPolicy(t, Config{Smoothing: 0.5}, proto.RoleLeaf)
	c := strong()
	p.Observe(t0, c)
	c.UpBps = 100_000
	c.Reachable = proto.ReachUnreachable
	p.Observe(t0.Add(time.Second), c)
	st := p.Status()
	if st.Capacity.UpBps != 300_000 || st.Capacity.Reachable != proto.ReachUnreachable {
		t.Errorf("smoothed up %v reachable %v; want 300,000 and the latest reachability", st.Capacity.UpBps, st.Capacity.Reachable)
	}
	c.UpBps, c.Cores = -5, 1/zero()
	p.Observe(t0.Add(2*time.Second), c)
	if st := p.Status(); st.Capacity.UpBps != 150_000 || st.Capacity.Cores != 2 {
		t.Errorf("bad inputs not taken as zero: %+v", st.Capacity)
	}
}

func zero() float64 { return 0 }

func TestConfigValidate(t *testing.T) {
	if _, err := NewPolicy(Config{}, proto.RoleLeaf); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	for _, c := range []Config{
		{MinUpBps: -1},
		{StayFraction: 1.5},
		{Smoothing: -0.1},
		{MinInterval: time.Hour, MaxBackoff: time.Minute},
		{Confidence: -1},
		{LeavesPerSupernode: -30},
		{Headroom: zero() / zero()},
		{MinUptime: -time.Second},
	} {
		if _, err := NewPolicy(c, proto.RoleLeaf); err == nil {
			t.Errorf("%+v accepted", c)
		}
		if _, err := NewPlanner(c); err == nil {
			t.Errorf("planner: %+v accepted", c)
		}
	}
	if _, err := NewPolicy(Config{}, proto.RoleBootstrap); err == nil {
		t.Error("a bootstrap role accepted")
	}
}

func TestActionAndAskJSON(t *testing.T) {
	for _, a := range []Action{Stay, Promote, Demote} {
		b, err := json.Marshal(a)
		var back Action
		if err != nil || json.Unmarshal(b, &back) != nil || back != a {
			t.Errorf("action %v: %s, %v, back %v", a, b, err, back)
		}
	}
	for _, a := range []Ask{AskNone, AskStepUp, AskStepDown} {
		b, err := json.Marshal(a)
		var back Ask
		if err != nil || json.Unmarshal(b, &back) != nil || back != a {
			t.Errorf("ask %v: %s, %v, back %v", a, b, err, back)
		}
	}
	var a Ask
	if err := json.Unmarshal([]byte(`"sideways"`), &a); err == nil {
		t.Error("an unknown ask decoded")
	}
}

// TestPolicySetReachable: a node measured while its dial-back was running
// (reachability unknown) declines; the result, once reported, counts at once
// without waiting for the next measurement.
func TestPolicySetReachable(t *testing.T) {
	p := newTestPolicy(t, Config{}, proto.RoleLeaf)
	p.SetReachable(proto.ReachPublic) // before any measurement: nothing to update
	c := strong()
	c.Reachable = proto.ReachUnknown
	p.Observe(t0, c)
	if !p.Declining(t0) {
		t.Fatal("a node not known to be reachable does not decline")
	}
	p.SetReachable(proto.ReachPublic)
	if p.Declining(t0) {
		t.Fatal("still declining after the dial-back reported it reachable")
	}
	p.Decide(t0, askUp)
	if d := p.Decide(t0.Add(time.Minute), askUp); d.Action != Promote {
		t.Fatalf("reachable, asked twice: %+v", d)
	}
	p.SetReachable(proto.ReachUnreachable)
	if d := p.Decide(t0.Add(2*time.Minute), noAsk); d.Eligible {
		t.Fatalf("an unreachable supernode still eligible: %+v", d)
	}
}
