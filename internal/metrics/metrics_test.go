package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestTextFormat(t *testing.T) {
	r := NewRegistry()
	up := r.Gauge("strata_up", "Whether it runs.")
	drops := r.Counter("strata_drops_total", "Dropped messages, by reason.", "reason")
	lat := r.Histogram("strata_latency_seconds", "Latency.\nSecond line with a \\.", []float64{0.1, 1})
	r.Gauge("strata_empty", "A labelled gauge with no series yet.", "kind")

	up.Set(1)
	drops.Inc("ttl")
	drops.Add(2, `say "hi"`+"\n")
	drops.Add(-5, "ttl") // ignored: counters only go up
	lat.Observe(0.05)
	lat.Observe(0.1) // on a bound: counts in that bucket
	lat.Observe(3)

	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP strata_up Whether it runs.
# TYPE strata_up gauge
strata_up 1
# HELP strata_drops_total Dropped messages, by reason.
# TYPE strata_drops_total counter
strata_drops_total{reason="say \"hi\"\n"} 2
strata_drops_total{reason="ttl"} 1
# HELP strata_latency_seconds Latency.\nSecond line with a \\.
# TYPE strata_latency_seconds histogram
strata_latency_seconds_bucket{le="0.1"} 2
strata_latency_seconds_bucket{le="1"} 2
strata_latency_seconds_bucket{le="+Inf"} 3
strata_latency_seconds_sum 3.15
strata_latency_seconds_count 3
# HELP strata_empty A labelled gauge with no series yet.
# TYPE strata_empty gauge
`
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestLabelledHistogramAndCollect(t *testing.T) {
	r := NewRegistry()
	h := r.Histogram("h_seconds", "H.", ExponentialBuckets(1, 10, 2), "path")
	g := r.Gauge("g", "G.", "k")
	calls := 0
	r.OnCollect(func() {
		calls++
		g.Reset()
		g.Set(float64(calls), "now")
	})
	h.Observe(5, "a")
	var b strings.Builder
	_ = r.WriteText(&b)
	b.Reset()
	_ = r.WriteText(&b)
	for _, line := range []string{
		`h_seconds_bucket{path="a",le="1"} 0`,
		`h_seconds_bucket{path="a",le="10"} 1`,
		`h_seconds_bucket{path="a",le="+Inf"} 1`,
		`h_seconds_sum{path="a"} 5`,
		`h_seconds_count{path="a"} 1`,
		`g{k="now"} 2`,
	} {
		if !strings.Contains(b.String(), line+"\n") {
			t.Errorf("missing %q in:\n%s", line, b.String())
		}
	}
}

func TestHandlerAndConcurrentUse(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("c_total", "C.", "who")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 1000 {
				c.Inc(string(rune('a' + i%2)))
			}
		})
	}
	hs := httptest.NewServer(r.Handler())
	defer hs.Close()
	wg.Go(func() {
		resp, err := http.Get(hs.URL)
		if err == nil {
			resp.Body.Close()
		}
	})
	wg.Wait()
	resp, err := http.Get(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != ContentType {
		t.Errorf("Content-Type %q, want %q", ct, ContentType)
	}
	var b strings.Builder
	_ = r.WriteText(&b)
	if !strings.Contains(b.String(), `c_total{who="a"} 4000`) || !strings.Contains(b.String(), `c_total{who="b"} 4000`) {
		t.Fatalf("lost increments:\n%s", b.String())
	}
}

func TestProgrammingErrorsPanic(t *testing.T) {
	for name, f := range map[string]func(r *Registry){
		"bad name":       func(r *Registry) { r.Gauge("strata-up", "") },
		"bad label":      func(r *Registry) { r.Gauge("up", "", "le") },
		"twice":          func(r *Registry) { r.Gauge("up", ""); r.Counter("up", "") },
		"label count":    func(r *Registry) { r.Gauge("up", "", "a").Set(1) },
		"unsorted bound": func(r *Registry) { r.Histogram("h", "", []float64{2, 1}) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f(NewRegistry())
		})
	}
}
