package promotion

import (
	"slices"
	"testing"
	"time"

	"github.com/strata-p2p/strata/proto"
)

// TestSimConvergence: 50 nodes join an empty network; within 3 rounds the
// supernodes are the best reachable nodes by measured capacity (≥ 90%
// overlap), for every seed, at the default ratio and a dense one. No unreachable node
// is ever promoted, though one in ten nodes is both unreachable and ten
// times stronger than the rest.
func TestSimConvergence(t *testing.T) {
	for _, ratio := range []float64{30, 5} {
		trueOverlap := 0.0
		for seed := uint64(1); seed <= 20; seed++ {
			cfg := convergenceConfig(seed, ratio)
			s, err := newSimulation(cfg)
			if err != nil {
				t.Fatal(err)
			}
			converged := 0
			for r := 1; r <= 20; r++ {
				if err := s.step(); err != nil {
					t.Fatal(err)
				}
				if converged == 0 && s.overlap(true) >= 0.9 {
					converged = r
					trueOverlap += s.overlap(false)
				}
			}
			if converged == 0 || converged > 3 {
				t.Errorf("ratio %g seed %d: converged in round %d (0: never), want ≤ 3; overlap after 20 rounds %.2f",
					ratio, seed, converged, s.overlap(true))
			}
			sn := len(s.supernodes())
			if leaves := len(s.nodes) - sn; sn < s.planner.Need(leaves) || sn > s.planner.keep(leaves) {
				t.Errorf("ratio %g seed %d: %d supernodes for %d leaves, band [%d, %d]",
					ratio, seed, sn, leaves, s.planner.Need(leaves), s.planner.keep(leaves))
			}
			if s.stats.BadPromoted > 0 {
				t.Fatalf("ratio %g seed %d: %d unreachable nodes promoted", ratio, seed, s.stats.BadPromoted)
			}
			strongUnreachable := 0
			for _, n := range s.nodes {
				if !n.reachable && n.truth.Cores == 8 && n.truth.MemBytes == 8<<30 {
					strongUnreachable++
				}
			}
			if seed == 1 && strongUnreachable == 0 {
				t.Errorf("seed 1 drew no strong unreachable node; the test proves nothing about them")
			}
		}
		// Against the noise-free capacities, 10% noise costs some overlap
		// where nodes are closer than the noise, not much.
		t.Logf("ratio %g: mean overlap with the noise-free top-k at convergence %.0f%%", ratio, 100*trueOverlap/20)
		if trueOverlap/20 < 0.75 {
			t.Errorf("ratio %g: mean overlap with the noise-free top-k %.2f, want ≥ 0.75", ratio, trueOverlap/20)
		}
	}
}

// TestSimDeterministic: a seed replays exactly.
func TestSimDeterministic(t *testing.T) {
	run := func() (simStats, []proto.PeerID) {
		s, err := newSimulation(churnConfig(7, Config{}))
		if err != nil {
			t.Fatal(err)
		}
		for range 240 {
			if err := s.step(); err != nil {
				t.Fatal(err)
			}
		}
		var sn []proto.PeerID
		for _, n := range s.supernodes() {
			sn = append(sn, n.id)
		}
		return s.stats, sn
	}
	a, asn := run()
	b, bsn := run()
	if a != b || !slices.Equal(asn, bsn) {
		t.Fatalf("two runs of one seed differ: %+v %v / %+v %v", a, asn, b, bsn)
	}
}

// TestSimChurn: about 200 nodes with Weibull sessions (shape 0.4, scale
// 42 min) for 8 hours after 2 hours of warm-up: role changes stay under
// 0.05 per node-hour, the network keeps the supernodes it needs most of
// the time, no unreachable node steps up, and switching every
// anti-flapping measure off makes changes more frequent.
func TestSimChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates 10 hours of 200 nodes")
	}
	on, err := churn(churnConfig(3, Config{}), 2*time.Hour, 8*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	off, err := churn(churnConfig(3, noHysteresis()), 2*time.Hour, 8*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rate := func(s simStats) float64 { return float64(s.Promotions+s.Demotions) / s.NodeHours }
	t.Logf("role changes per node-hour: %.4f with hysteresis, %.4f without; departures per node-hour %.3f; mean supernodes %.1f; need met %.1f%% of rounds",
		rate(on), rate(off), float64(on.Departures)/on.NodeHours, on.Supernodes/float64(on.Rounds), 100*float64(on.NeedMet)/float64(on.Rounds))
	if on.BadPromoted > 0 || off.BadPromoted > 0 {
		t.Fatalf("unreachable nodes promoted: %d / %d", on.BadPromoted, off.BadPromoted)
	}
	if r := rate(on); r > 0.05 {
		t.Errorf("%.4f role changes per node-hour, target ≤ 0.05", r)
	}
	if rate(off) <= rate(on) {
		t.Errorf("without hysteresis %.4f changes per node-hour, with %.4f: hysteresis does nothing here", rate(off), rate(on))
	}
	if met := float64(on.NeedMet) / float64(on.Rounds); met < 0.9 {
		t.Errorf("the network had the supernodes it needs in only %.0f%% of rounds", 100*met)
	}
	if on.Departures == 0 || on.Promotions == 0 {
		t.Errorf("no churn happened: %+v", on)
	}
}
