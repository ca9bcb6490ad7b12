// Package metrics is a small Prometheus text-format writer: counters,
// gauges and histograms, each with optional labels, kept in a Registry that
// its owner creates (one per node or bootstrap server; there is no global
// registry). It writes the text exposition format, version 0.0.4, that
// Prometheus scrapes:
//
//	# HELP strata_leaves Leaves attached to this supernode.
//	# TYPE strata_leaves gauge
//	strata_leaves 3
//
// Values that live elsewhere (a supernode's counters, a share library's
// size) are copied in by a function registered with OnCollect, which runs
// at the start of every scrape.
//
// Registering a family twice, an invalid name, or passing the wrong number
// of label values are programming errors and panic: the families are fixed
// in the code that registers them, and its tests catch the mistake.
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ContentType is the media type of the text format WriteText produces.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Registry holds metric families and writes them in registration order.
type Registry struct {
	mu       sync.Mutex // guards families, byName and collect
	families []*family
	byName   map[string]*family
	collect  []func()

	scrape sync.Mutex // one scrape at a time, so collect functions need no locking of their own
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byName: map[string]*family{}}
}

type kind int

const (
	kindCounter kind = iota
	kindGauge
	kindHistogram
)

func (k kind) String() string {
	return [...]string{"counter", "gauge", "histogram"}[k]
}

// family is one metric name with its series, one per combination of label
// values.
type family struct {
	name, help string
	kind       kind
	labels     []string
	buckets    []float64 // upper bounds, ascending, without +Inf

	mu     sync.Mutex
	series map[string]*series // key: label values joined by 0xff
}

type series struct {
	values []string
	value  float64  // counter, gauge
	counts []uint64 // histogram: per bucket (not cumulative), then +Inf
	sum    float64
}

func (r *Registry) register(name, help string, k kind, buckets []float64, labels []string) *family {
	if !validName(name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", name)) // programming error
	}
	for _, l := range labels {
		if !validName(l) || strings.HasPrefix(l, "__") || l == "le" {
			panic(fmt.Sprintf("metrics: invalid label name %q on %s", l, name)) // programming error
		}
	}
	f := &family{name: name, help: help, kind: k, labels: slices.Clone(labels), buckets: buckets,
		series: map[string]*series{}}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.byName[name]; dup {
		panic("metrics: " + name + " registered twice") // programming error
	}
	r.byName[name] = f
	r.families = append(r.families, f)
	if len(labels) == 0 {
		f.get(nil) // an unlabelled metric is always shown, at 0 until set
	}
	return f
}

// get returns the series for values, creating it.
func (f *family) get(values []string) *series {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s takes %d label values (%v), got %d", f.name, len(f.labels), f.labels, len(values))) // programming error
	}
	key := strings.Join(values, "\xff")
	s, ok := f.series[key]
	if !ok {
		s = &series{values: slices.Clone(values)}
		if f.kind == kindHistogram {
			s.counts = make([]uint64, len(f.buckets)+1)
		}
		f.series[key] = s
	}
	return s
}

func (f *family) update(values []string, fn func(s *series)) {
	f.mu.Lock()
	fn(f.get(values))
	f.mu.Unlock()
}

// Counter is a value that only goes up (it restarts at 0 with the process).
type Counter struct{ f *family }

// Counter registers a counter. By Prometheus convention its name ends in
// _total.
func (r *Registry) Counter(name, help string, labels ...string) *Counter {
	return &Counter{r.register(name, help, kindCounter, nil, labels)}
}

// Add adds v (which must not be negative; negative values are ignored) to
// the series with the given label values.
func (c *Counter) Add(v float64, labelValues ...string) {
	if v < 0 || math.IsNaN(v) {
		return
	}
	c.f.update(labelValues, func(s *series) { s.value += v })
}

// Inc adds 1.
func (c *Counter) Inc(labelValues ...string) { c.Add(1, labelValues...) }

// Set copies a counter kept elsewhere (for example a supernode's query
// count) into the series. The source must itself only go up, or restart
// from 0, which Prometheus treats as a counter reset.
func (c *Counter) Set(v float64, labelValues ...string) {
	c.f.update(labelValues, func(s *series) { s.value = v })
}

// Gauge is a value that goes up and down.
type Gauge struct{ f *family }

// Gauge registers a gauge.
func (r *Registry) Gauge(name, help string, labels ...string) *Gauge {
	return &Gauge{r.register(name, help, kindGauge, nil, labels)}
}

// Set sets the series with the given label values to v.
func (g *Gauge) Set(v float64, labelValues ...string) {
	g.f.update(labelValues, func(s *series) { s.value = v })
}

// Add adds v (possibly negative) to the series.
func (g *Gauge) Add(v float64, labelValues ...string) {
	g.f.update(labelValues, func(s *series) { s.value += v })
}

// Reset forgets every series of a labelled gauge (an unlabelled one goes
// back to 0), so a collect function can rebuild a set whose members come
// and go.
func (g *Gauge) Reset() {
	g.f.mu.Lock()
	defer g.f.mu.Unlock()
	clear(g.f.series)
	if len(g.f.labels) == 0 {
		g.f.get(nil)
	}
}

// Histogram counts observations in buckets.
type Histogram struct{ f *family }

// Histogram registers a histogram with the given bucket upper bounds
// (ascending; +Inf is added).
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *Histogram {
	b := slices.Clone(buckets)
	if !slices.IsSorted(b) || len(slices.Compact(slices.Clone(b))) != len(b) {
		panic("metrics: buckets of " + name + " must be ascending and distinct") // programming error
	}
	if n := len(b); n > 0 && math.IsInf(b[n-1], +1) {
		b = b[:n-1]
	}
	return &Histogram{r.register(name, help, kindHistogram, b, labels)}
}

// Observe adds one observation v.
func (h *Histogram) Observe(v float64, labelValues ...string) {
	if math.IsNaN(v) {
		return
	}
	i, _ := slices.BinarySearch(h.f.buckets, v) // first bucket with bound >= v
	h.f.update(labelValues, func(s *series) {
		s.counts[i]++
		s.sum += v
	})
}

// ExponentialBuckets returns n bounds: start, start*factor, ...
func ExponentialBuckets(start, factor float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = start
		start *= factor
	}
	return out
}

// OnCollect registers f to run at the start of every scrape, before
// anything is written. Scrapes are serialised, so f runs alone.
func (r *Registry) OnCollect(f func()) {
	r.mu.Lock()
	r.collect = append(r.collect, f)
	r.mu.Unlock()
}

// WriteText runs the collect functions and writes every family in the
// Prometheus text format.
func (r *Registry) WriteText(w io.Writer) error {
	r.scrape.Lock()
	defer r.scrape.Unlock()
	r.mu.Lock()
	collect := slices.Clone(r.collect)
	families := slices.Clone(r.families)
	r.mu.Unlock()
	for _, f := range collect {
		f()
	}
	bw := bufio.NewWriter(w)
	for _, f := range families {
		f.write(bw)
	}
	return bw.Flush()
}

// Handler serves the registry's text format (for GET /metrics).
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", ContentType)
		w.Header().Set("Cache-Control", "no-store")
		_ = r.WriteText(w)
	})
}

func (f *family) write(w *bufio.Writer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.kind)
	all := make([]*series, 0, len(f.series))
	for _, s := range f.series {
		all = append(all, s)
	}
	slices.SortFunc(all, func(a, b *series) int { return slices.Compare(a.values, b.values) })
	for _, s := range all {
		if f.kind != kindHistogram {
			writeSample(w, f.name, f.labels, s.values, "", "", s.value)
			continue
		}
		var cum uint64
		for i, c := range s.counts {
			cum += c
			le := "+Inf"
			if i < len(f.buckets) {
				le = formatFloat(f.buckets[i])
			}
			writeSample(w, f.name+"_bucket", f.labels, s.values, "le", le, float64(cum))
		}
		writeSample(w, f.name+"_sum", f.labels, s.values, "", "", s.sum)
		writeSample(w, f.name+"_count", f.labels, s.values, "", "", float64(cum))
	}
}

func writeSample(w *bufio.Writer, name string, labels, values []string, extraName, extraValue string, v float64) {
	w.WriteString(name)
	if len(labels) > 0 || extraName != "" {
		w.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				w.WriteByte(',')
			}
			writeLabel(w, l, values[i])
		}
		if extraName != "" {
			if len(labels) > 0 {
				w.WriteByte(',')
			}
			writeLabel(w, extraName, extraValue)
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

func writeLabel(w *bufio.Writer, name, value string) {
	w.WriteString(name)
	w.WriteString(`="`)
	w.WriteString(escapeLabel(value))
	w.WriteByte('"')
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// validName reports whether s is a Prometheus metric or label name:
// [a-zA-Z_][a-zA-Z0-9_]* (colons are reserved for recording rules).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
