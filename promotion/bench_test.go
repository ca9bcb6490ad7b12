package promotion

import (
	"fmt"
	"testing"
	"time"
)

// convergenceConfig is a 50-node join of an empty network: every node
// starts at the same moment, capacities spread wide, a quarter of the
// ordinary nodes and one in ten strong ones unreachable, 10% measurement
// noise, one round every 30 s.
func convergenceConfig(seed uint64, ratio float64) simConfig {
	return simConfig{
		Seed:              seed,
		Policy:            Config{LeavesPerSupernode: ratio},
		Round:             30 * time.Second,
		Nodes:             50,
		Noise:             0.1,
		ProbeEvery:        10 * time.Minute,
		Unreachable:       0.25,
		StrongUnreachable: 0.1,
	}
}

// maxConvergenceRounds bounds a convergence run; a run that has not
// converged by then counts as this many rounds.
const maxConvergenceRounds = 200

// converge runs cfg until the supernode set overlaps the top-k by
// measured capacity by 90% and returns the rounds it took and the overlap
// then with the top-k by noise-free capacity.
func converge(cfg simConfig) (rounds int, trueOverlap float64, err error) {
	s, err := newSimulation(cfg)
	if err != nil {
		return 0, 0, err
	}
	for r := 1; r <= maxConvergenceRounds; r++ {
		if err := s.step(); err != nil {
			return 0, 0, err
		}
		if s.overlap(true) >= 0.9 {
			return r, s.overlap(false), nil
		}
	}
	return maxConvergenceRounds, s.overlap(false), nil
}

// BenchmarkConvergence: 50 nodes join an empty network; rounds (and wall
// time) until the supernode set overlaps the top-k-by-measured-capacity
// reachable set by ≥ 90%. Target ≤ 3 rounds. Each iteration is a different
// seed (the i-th iteration runs seed i, so the figures repeat); the
// figures are means over iterations, with the worst run's rounds, and
// true-overlap-% is the overlap at that point with the top-k by noise-free
// capacity (what 10% measurement noise costs).
func BenchmarkConvergence(b *testing.B) {
	for _, ratio := range []float64{30, 5} {
		b.Run(fmt.Sprintf("ratio=%g", ratio), func(b *testing.B) {
			var sumRounds, worst int
			var wall time.Duration
			var trueOverlap float64
			seed := uint64(0)
			for b.Loop() {
				seed++
				start := time.Now()
				r, ov, err := converge(convergenceConfig(seed, ratio))
				wall += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				trueOverlap += ov
				sumRounds += r
				worst = max(worst, r)
			}
			b.ReportMetric(float64(sumRounds)/float64(seed), "rounds")
			b.ReportMetric(float64(worst), "rounds-worst")
			b.ReportMetric((wall / time.Duration(seed)).Seconds(), "seconds")
			b.ReportMetric(100*trueOverlap/float64(seed), "true-overlap-%")
		})
	}
}

// churnConfig keeps about 200 nodes with sessions from a Weibull
// distribution of shape 0.4 and scale 42 min (../shared/FACTS.md), one
// round every 30 s, 20% measurement noise.
func churnConfig(seed uint64, policy Config) simConfig {
	return simConfig{
		Seed:              seed,
		Policy:            policy,
		Round:             30 * time.Second,
		Nodes:             200,
		ChurnShape:        0.4,
		ChurnScale:        42 * time.Minute,
		Noise:             0.2,
		ProbeEvery:        10 * time.Minute,
		Unreachable:       0.25,
		StrongUnreachable: 0.1,
	}
}

// noHysteresis is the baseline the churn figure is compared with: act on
// the first decision, no hold-down, no stay band, no smoothing, no
// headroom band on the server, no sticky asks.
func noHysteresis() Config {
	return Config{Confidence: 1, MinInterval: time.Nanosecond, MaxBackoff: time.Nanosecond, StayFraction: 1,
		Smoothing: 1, Headroom: -1, Stickiness: -1}
}

// churn runs warm-up then span of logical time and returns the stats of
// span.
func churn(cfg simConfig, warmup, span time.Duration) (simStats, error) {
	s, err := newSimulation(cfg)
	if err != nil {
		return simStats{}, err
	}
	s.counted = false
	for range int(warmup / cfg.Round) {
		if err := s.step(); err != nil {
			return simStats{}, err
		}
	}
	s.counted = true
	for range int(span / cfg.Round) {
		if err := s.step(); err != nil {
			return simStats{}, err
		}
	}
	return s.stats, nil
}

// BenchmarkChurn: about 200 nodes for 24 h of logical time (after 6 h of
// warm-up) with Weibull sessions; role changes (promotions + demotions)
// per node-hour, target ≤ 0.05. hysteresis=off is the same network with
// every anti-flapping measure off, for comparison.
func BenchmarkChurn(b *testing.B) {
	for _, c := range []struct {
		name   string
		policy Config
	}{{"hysteresis=on", Config{}}, {"hysteresis=off", noHysteresis()}} {
		b.Run(c.name, func(b *testing.B) {
			var total simStats
			var wall time.Duration
			seed := uint64(0)
			for b.Loop() {
				seed++
				start := time.Now()
				st, err := churn(churnConfig(seed, c.policy), 6*time.Hour, 24*time.Hour)
				wall += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				if st.BadPromoted > 0 {
					b.Fatalf("seed %d: %d unreachable nodes promoted", seed, st.BadPromoted)
				}
				total.Promotions += st.Promotions
				total.Demotions += st.Demotions
				total.NodeHours += st.NodeHours
				total.Rounds += st.Rounds
				total.Supernodes += st.Supernodes
				total.NeedMet += st.NeedMet
				total.Departures += st.Departures
			}
			changes := float64(total.Promotions + total.Demotions)
			b.ReportMetric(changes/total.NodeHours, "role-changes/node-hour")
			b.ReportMetric(float64(total.Departures)/total.NodeHours, "departures/node-hour")
			b.ReportMetric(total.Supernodes/float64(total.Rounds), "supernodes")
			b.ReportMetric(100*float64(total.NeedMet)/float64(total.Rounds), "need-met-%")
			b.ReportMetric((wall / time.Duration(seed)).Seconds(), "seconds")
		})
	}
}
