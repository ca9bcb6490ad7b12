package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-p2p/strata/bootstrap"
	"github.com/strata-p2p/strata/node"
	"github.com/strata-p2p/strata/promotion"
	"github.com/strata-p2p/strata/proto"
	"github.com/strata-p2p/strata/test/internal/proctest"
)

// promotionFlags are the short intervals the promotion test runs with (the
// defaults are minutes to hours).
// promotionFlags: short hold-downs for a test. Each leaf keeps one
// supernode (--supernodes 1): the planner's target is leaves per supernode,
// and the small --max-leaves below leave room for one session per leaf, not
// two (failover_test.go covers two).
var promotionFlags = []string{"--supernodes", "1", "--promotion-hold", "3s", "--promotion-confidence", "2", "--probe-every", "3s",
	"--promotion-max-load", "-1", "--promotion-min-cores", "1.5",
	// A small index benchmark: twelve race-enabled processes share two cores.
	"--bench-files", "2000"}

// TestPromotion: twelve --role auto nodes with different upload caps and CPU
// budgets join an empty network whose bootstrap wants 3 leaves per
// supernode. The network settles with the four strongest eligible,
// reachable nodes as supernodes: not the strongest node, which a firewall
// rule makes unreachable from outside, nor the next, which has one core
// where 1.5 are needed. Three more leaves raise the supernode count to
// five (a weak node steps up); when leaves go, that supernode steps down and
// hands its leaf off to another supernode while that leaf searches without
// a failure.
func TestPromotion(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sixteen processes")
	}
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 CPUs to give nodes different CPU budgets (GOMAXPROCS=1 against 2)")
	}
	bs := start(t, "bootstrap", append(proctest.BootstrapArgs(t), "--heartbeat", "250ms", "--check-in", "250ms",
		"--leaves-per-supernode", "3", "--promotion-hold", "3s",
		// Every node of the test comes from 127.0.0.1.
		"--promotion-request-rate", "100", "--promotion-request-burst", "100")...)
	bsAddr := bs.Ready.QUIC
	share := t.TempDir()
	writeMP3(t, share, "Everyone - Common Anthem.mp3", "Everyone", "Common Anthem")

	type spec struct {
		name       string
		cap        string // --max-upload-rate
		maxLeaves  int
		oneCore    bool // GOMAXPROCS=1
		firewalled bool
	}
	// Caps a busy host can still tell apart: each paced write of the
	// probe waits 80 ms or more, so a late timer is a small error.
	specs := []spec{
		{name: "unreachable", cap: "", maxLeaves: 2, firewalled: true},
		{name: "onecore", cap: "", maxLeaves: 2, oneCore: true},
		{name: "strong1", cap: "400KB", maxLeaves: 2},
		{name: "strong2", cap: "350KB", maxLeaves: 2},
		{name: "strong3", cap: "300KB", maxLeaves: 2},
		{name: "strong4", cap: "250KB", maxLeaves: 2},
		{name: "weak1", cap: "60KB", maxLeaves: 3},
		{name: "weak2", cap: "55KB", maxLeaves: 3},
		{name: "weak3", cap: "50KB", maxLeaves: 3},
		{name: "weak4", cap: "45KB", maxLeaves: 3},
		{name: "weak5", cap: "40KB", maxLeaves: 3},
		{name: "weak6", cap: "35KB", maxLeaves: 3},
	}
	firewall := firewallAvailable(t)
	nodes := map[string]*proc{}
	byID := map[proto.PeerID]string{}
	for _, s := range specs {
		listen := "127.0.0.1:0"
		if s.firewalled {
			if listen = blockInbound(t, firewall); listen == "" {
				continue
			}
		}
		args := proctest.NodeArgs(t, bsAddr, append([]string{"--share", share, "--max-leaves", strconv.Itoa(s.maxLeaves),
			"--max-upload-rate", s.cap}, promotionFlags...)...)
		args[slices.Index(args, "--listen")+1] = listen
		env := []string{"GOMAXPROCS=2"}
		if s.oneCore {
			env = []string{"GOMAXPROCS=1"}
		}
		p := startEnv(t, s.name, env, args...)
		nodes[s.name] = p
		byID[p.Ready.PeerID] = s.name
	}
	strong := []string{"strong1", "strong2", "strong3", "strong4"}
	began := time.Now()

	// Settling: exactly the four strong nodes are supernodes, every other
	// node is attached as a leaf, and the plan asks nothing.
	supernodes := func() []string {
		var st bootstrap.Status
		bs.GetJSON("/v1/status", &st)
		var out []string
		for _, s := range st.Supernodes {
			out = append(out, byID[s.PeerID])
		}
		slices.Sort(out)
		return out
	}
	settled := func(want []string) bool {
		var st bootstrap.Status
		bs.GetJSON("/v1/status", &st)
		if got := supernodes(); !slices.Equal(got, want) {
			return false
		}
		if st.Promotion == nil || len(st.Promotion.Plan.StepUp)+len(st.Promotion.Plan.StepDown) > 0 {
			return false
		}
		for name, p := range nodes {
			if !slices.Contains(want, name) && p.Status().Attached == nil {
				return false
			}
		}
		return true
	}
	// describe is the bootstrap's view, for failure messages.
	describe := func() string {
		var st bootstrap.Status
		bs.GetJSON("/v1/status", &st)
		var b strings.Builder
		if st.Promotion != nil {
			pl := st.Promotion.Plan
			fmt.Fprintf(&b, "plan: %d leaves, %d supernodes, need %d, keep %d: %s\n", pl.Leaves, pl.Supernodes, pl.Need, pl.Keep, pl.Reason)
			for _, n := range st.Promotion.Nodes {
				fmt.Fprintf(&b, "  %-12s %-9s %-11s up %8.0f B/s  ask %-9s declining %v\n", byID[n.PeerID], n.Role, n.Reachable, n.UpBps, n.Ask, n.Declining)
			}
		}
		return b.String()
	}
	waitFor := func(d time.Duration, what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("after %v: %s\n%s", d, what, describe())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor(90*time.Second, "the network did not settle with strong1..4 as its supernodes", func() bool {
		return settled(strong)
	})
	var st bootstrap.Status
	bs.GetJSON("/v1/status", &st)
	leaves, sns := st.Promotion.Plan.Leaves, st.Promotion.Plan.Supernodes
	t.Logf("settled after %v: %d supernodes for %d leaves (target 3 per supernode)", time.Since(began).Round(time.Second), sns, leaves)
	if sns == 0 || float64(leaves)/float64(sns) > 3 {
		t.Errorf("%d leaves for %d supernodes: over the target of 3 per supernode", leaves, sns)
	}
	// The upload caps show in what the bootstrap measured (its probes),
	// once it has probed every capped node.
	capOf := map[string]string{}
	for _, sp := range specs {
		capOf[sp.name] = sp.cap
	}
	waitFor(60*time.Second, "the bootstrap has not probed every node", func() bool {
		bs.GetJSON("/v1/status", &st)
		return !slices.ContainsFunc(st.Promotion.Nodes, func(n bootstrap.NodeStatus) bool { return n.UpBps == 0 })
	})
	for _, n := range st.Promotion.Nodes {
		name := byID[n.PeerID]
		if c := capOf[name]; c != "" {
			limit := parseCap(t, c)
			// A busy host can make a probe come out low, not above the cap
			// (a quarter of the probe is allowed for the cap's burst).
			t.Logf("%-8s cap %7s: the bootstrap measured %8.0f B/s up", name, c, n.UpBps)
			if n.UpBps > 1.5*limit {
				t.Errorf("%s: measured %.0f B/s up with a cap of %s", name, n.UpBps, c)
			}
		}
	}
	// Dial-backs: the firewalled node is unreachable (after three failed
	// dial-backs), every other node reachable.
	waitFor(30*time.Second, "the dial-backs did not find the firewalled node unreachable and the others reachable", func() bool {
		bs.GetJSON("/v1/status", &st)
		return !slices.ContainsFunc(st.Promotion.Nodes, func(n bootstrap.NodeStatus) bool {
			want := proto.ReachPublic
			if byID[n.PeerID] == "unreachable" {
				want = proto.ReachUnreachable
			}
			return n.Reachable != want
		})
	})
	if p := nodes["unreachable"]; p != nil {
		// The node hears the bootstrap's finding at its next check-in.
		var ps node.Status
		knows := func() bool {
			ps = p.Status()
			return ps.Promotion != nil && ps.Promotion.Reachable == proto.ReachUnreachable
		}
		for end := time.Now().Add(10 * time.Second); !knows() && time.Now().Before(end); {
			time.Sleep(100 * time.Millisecond)
		}
		if ps.Role != proto.RoleLeaf || !knows() {
			t.Errorf("the firewalled node: role %s, promotion %+v; want a leaf that knows it is unreachable", ps.Role, ps.Promotion)
		}
	} else {
		t.Log("no firewalled node: iptables unavailable (see the skip message above)")
	}
	if ps := nodes["onecore"].Status(); ps.Promotion == nil || ps.Promotion.Policy.Capacity.Cores != 1 || !failedGate(ps, "cores") {
		t.Errorf("the one-core node: want 1 core measured and the cores gate failing; got %+v", ps.Promotion)
	}
	for _, name := range strong {
		ps := nodes[name].Status()
		if !hasEvent(ps, "became a supernode: promotion: asked to step up") {
			t.Errorf("%s: no promotion event in %+v", name, ps.Events)
		}
	}

	// More leaves: the four supernodes are full (two leaves each), so the
	// network needs a fifth, one of the weak nodes (the best remaining
	// candidates; measurement noise may order weak1 and weak2 either way).
	var pinned []*proc
	for i := range 3 {
		p := start(t, fmt.Sprintf("extra%d", i+1), proctest.NodeArgs(t, bsAddr, "--role", "leaf", "--supernodes", "1")...)
		byID[p.Ready.PeerID] = p.Name
		pinned = append(pinned, p)
	}
	var fifth string
	waitFor(45*time.Second, "three more leaves did not bring a fifth supernode, a weak one", func() bool {
		got := supernodes()
		if len(got) != 5 || !slices.Equal(slices.DeleteFunc(slices.Clone(got), func(n string) bool { return strings.HasPrefix(n, "weak") }), strong) {
			return false
		}
		for _, n := range got {
			if strings.HasPrefix(n, "weak") {
				fifth = n
			}
		}
		for _, p := range pinned {
			if p.Status().Attached == nil {
				return false
			}
		}
		return true
	})
	t.Logf("a fifth supernode, %s, after %v", fifth, time.Since(began).Round(time.Second))
	// The searcher is an extra leaf attached to the fifth.
	var searcher *proc
	for _, p := range pinned {
		if a := p.Status().Attached; a != nil && a.Supernode.ID == nodes[fifth].Ready.PeerID {
			searcher = p
		}
	}
	if searcher == nil {
		t.Fatalf("no extra leaf attached to %s, the only supernode with room", fifth)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var searches int
	var failures []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Four a second: a supernode takes at most five from a leaf.
		pace := time.NewTicker(250 * time.Millisecond)
		defer pace.Stop()
		for {
			select {
			case <-stop:
				return
			case <-pace.C:
			}
			hits, err := searchOnce(searcher.Ready.API, "common anthem")
			mu.Lock()
			searches++
			if err != nil || hits == 0 {
				failures = append(failures, fmt.Sprintf("search %d: %d hits, %v", searches, hits, err))
			}
			mu.Unlock()
		}
	}()

	// Fewer leaves: stop the two other extras and two weak leaves. Six
	// leaves need no fifth supernode; the weakest, the fifth, steps down
	// and hands the searcher off first.
	for _, p := range pinned {
		if p != searcher {
			p.Stop()
		}
	}
	stopped := 0
	for _, name := range []string{"weak6", "weak5", "weak4", "weak3"} {
		if name != fifth && stopped < 2 {
			nodes[name].Stop()
			stopped++
		}
	}
	weak := nodes[fifth]
	waitFor(45*time.Second, fifth+" did not step down when the leaves went", func() bool {
		return slices.Equal(supernodes(), strong) && weak.Status().Role == proto.RoleLeaf
	})
	proctest.Eventually(t, 15*time.Second, "the searcher did not move to a strong supernode", func() bool {
		a := searcher.Status().Attached
		return a != nil && slices.Contains(strong, byID[a.Supernode.ID])
	})
	proctest.Eventually(t, 15*time.Second, fifth+" did not attach as a leaf", func() bool { return weak.Status().Attached != nil })
	// A few more searches through the new supernode.
	mu.Lock()
	after := searches
	mu.Unlock()
	proctest.Eventually(t, 15*time.Second, "the searcher stopped searching", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return searches >= after+5
	})
	close(stop)
	wg.Wait()
	t.Logf("%s stepped down, its leaf moved, after %v; %d searches during the hand-off, %d failed",
		fifth, time.Since(began).Round(time.Second), searches, len(failures))
	if len(failures) > 0 {
		t.Errorf("searches failed during the hand-off:\n%s", strings.Join(failures, "\n"))
	}
	ws := weak.Status()
	if !hasEvent(ws, "leaves to move, 0 still attached") || hasEvent(ws, "told 0 leaves") {
		t.Errorf("%s did not hand its leaf off: events %+v", fifth, ws.Events)
	}
	if !hasEvent(searcher.Status(), "moved to supernode") {
		t.Errorf("the searcher did not record its move: events %+v", searcher.Status().Events)
	}
	// The step-down is a decision with its inputs in the status.
	if ws.Promotion == nil || !slices.ContainsFunc(ws.Promotion.Policy.Decisions, func(d promotion.DecisionRecord) bool {
		return d.Action.String() == "demote" && d.Reason == "asked to step down"
	}) {
		t.Errorf("%s's decisions do not show the step-down: %+v", fifth, ws.Promotion)
	}
	// `strata status` shows the promotion engine, in both outputs.
	out, err := proctest.CLI(t, "status", "--api", ws.API)
	if err != nil || !strings.Contains(out, "promotion") || !strings.Contains(out, "asked to step down") {
		t.Errorf("strata status: %v\n%s", err, out)
	}
	out, err = proctest.CLI(t, "status", "--api", ws.API, "--json")
	var js node.Status
	if err != nil || json.Unmarshal([]byte(out), &js) != nil || js.Promotion == nil || len(js.Promotion.Policy.Decisions) == 0 {
		t.Errorf("strata status --json: %v\n%s", err, out)
	}
}

// parseCap reads the test's --max-upload-rate values ("400KB", "1MB").
func parseCap(t *testing.T, s string) float64 {
	t.Helper()
	for suffix, mult := range map[string]float64{"KB": 1e3, "MB": 1e6} {
		if v, ok := strings.CutSuffix(s, suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f * mult
		}
	}
	t.Fatalf("cap %q: want KB or MB", s)
	return 0
}

func hasEvent(st node.Status, what string) bool {
	return slices.ContainsFunc(st.Events, func(e node.Event) bool { return strings.Contains(e.What, what) })
}

func failedGate(st node.Status, gate string) bool {
	for _, d := range st.Promotion.Policy.Decisions {
		for _, g := range d.Gates {
			if g.Name == gate && !g.OK {
				return true
			}
		}
	}
	return false
}

// searchOnce runs one search through a node's API and counts the hits; a
// search that ends with an error reports it.
func searchOnce(api, q string) (int, error) {
	u := "http://" + api + "/v1/search?" + url.Values{"q": {q}, "max": {"1"}, "timeout": {"2s"}}.Encode()
	resp, err := http.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s", resp.Status)
	}
	hits := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var ev node.SearchEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return hits, err
		}
		if ev.Hit != nil {
			hits++
		}
		if ev.Error != "" {
			return hits, fmt.Errorf("%s", ev.Error)
		}
	}
	return hits, sc.Err()
}

// firewallAvailable reports whether the test can make a node unreachable
// with an iptables rule (root, iptables, and a kernel that takes rules).
func firewallAvailable(t *testing.T) bool {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Log("SKIPPING the unreachable node: making it unreachable needs root (an iptables rule on loopback)")
		return false
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Log("SKIPPING the unreachable node: iptables is not installed (apt-get install iptables)")
		return false
	}
	if out, err := exec.Command("iptables", "-L", "INPUT", "-n").CombinedOutput(); err != nil {
		t.Logf("SKIPPING the unreachable node: iptables does not work here (%v: %s)", err, out)
		return false
	}
	return true
}

// blockInbound picks a free UDP port on loopback and drops every new inbound
// flow to it, as a NAT or a firewall would: the node's own connections
// (and their answers) pass, a dial from anywhere else does not. It returns
// the address to listen on ("" when no rule can be made: the test logs why
// and goes on without the node); the rule goes in t.Cleanup.
func blockInbound(t *testing.T, firewall bool) string {
	t.Helper()
	if !firewall {
		return ""
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	_ = pc.Close()
	_, port, _ := net.SplitHostPort(addr)
	rule := []string{"INPUT", "-i", "lo", "-p", "udp", "--dport", port, "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"}
	if out, err := exec.Command("iptables", append([]string{"-I"}, rule...)...).CombinedOutput(); err != nil {
		t.Logf("SKIPPING the unreachable node: iptables -I %s: %v: %s (needs the conntrack match)", strings.Join(rule, " "), err, out)
		return ""
	}
	t.Cleanup(func() {
		if out, err := exec.Command("iptables", append([]string{"-D"}, rule...)...).CombinedOutput(); err != nil {
			t.Errorf("removing the iptables rule (iptables -D %s): %v: %s", strings.Join(rule, " "), err, out)
		}
	})
	return addr
}
