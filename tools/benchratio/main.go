// Command benchratio reads `go test -bench` output (several -count runs) on
// standard input and prints, for each pair named with -pair, the median of
// each side and their ratio, so `make bench` shows every figure beside its
// comparison from the same run.
//
//	go test -bench . -count 5 ./... | benchratio \
//	  -pair 'throughput|BenchmarkStreamThroughput/impl=strata|BenchmarkStreamThroughput/impl=quic-go-default|MB/s|>=0.95'
//
// A pair is label|ours|baseline|unit[|target], target being ">=X" or "<=X"
// on the ratio ours/baseline (of the two medians). Where both sides have
// the same number of runs, PAIRED is also the median of the run-by-run
// ratios (run k of ours over run k of the baseline: the same round when a
// script runs each implementation once per round), which a slow spell of
// the machine shifts less; the target is judged on the ratio of medians.
// ours or baseline may be Name@unit to compare two metrics of one
// benchmark (e.g. a latency beside a round trip it measured in the same
// run). Unmatched benchmark lines are echoed so no
// figure is hidden.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

type pairs []string

func (p *pairs) String() string     { return strings.Join(*p, ",") }
func (p *pairs) Set(s string) error { *p = append(*p, s); return nil }

var procSuffix = regexp.MustCompile(`-\d+$`)

// parse returns samples[name][unit] from benchmark lines.
func parse(r io.Reader, echo io.Writer) (map[string]map[string][]float64, error) {
	out := map[string]map[string][]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "panic") || strings.Contains(line, "--- FAIL") {
				fmt.Fprintln(echo, line)
			}
			continue
		}
		name := procSuffix.ReplaceAllString(f[0], "")
		if out[name] == nil {
			out[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			out[name][f[i+1]] = append(out[name][f[i+1]], v)
		}
	}
	return out, sc.Err()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func main() {
	var ps pairs
	flag.Var(&ps, "pair", "label|ours|baseline|unit[|target] (repeatable)")
	all := flag.Bool("all", true, "also list every benchmark figure (medians)")
	flag.Parse()
	samples, err := parse(os.Stdin, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(1)
	}
	if len(samples) == 0 {
		fmt.Fprintln(os.Stderr, "benchratio: no benchmark lines on standard input (did the benchmarks fail to build?)")
		os.Exit(1)
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	if len(ps) > 0 {
		fmt.Fprintln(tw, "COMPARISON\tUNIT\tOURS\tBASELINE\tRATIO\tPAIRED\tTARGET\tRUNS")
	}
	for _, p := range ps {
		f := strings.Split(p, "|")
		if len(f) < 4 {
			fmt.Fprintf(os.Stderr, "benchratio: bad -pair %q: want label|ours|baseline|unit[|target]\n", p)
			os.Exit(2)
		}
		a, b := lookup(samples, f[1], f[3]), lookup(samples, f[2], f[3])
		if len(a) == 0 || len(b) == 0 {
			fmt.Fprintf(tw, "%s\t%s\tmissing\tmissing\t-\t-\t-\t%d/%d\n", f[0], f[3], len(a), len(b))
			continue
		}
		ma, mb := median(a), median(b)
		ratio := ma / mb
		target := "-"
		if len(f) > 4 {
			target = f[4]
			if ok, err := meets(ratio, f[4]); err == nil {
				if ok {
					target += " met"
				} else {
					target += " MISSED"
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%.4g\t%.4g\t%.3f\t%s\t%s\t%d\n", f[0], f[3], ma, mb, ratio, paired(a, b), target, len(a))
	}
	if *all {
		if len(ps) > 0 {
			fmt.Fprintln(tw, "\t\t\t\t\t\t\t")
		}
		fmt.Fprintln(tw, "BENCHMARK\tUNIT\tMEDIAN\tRUNS\t\t\t\t")
		names := make([]string, 0, len(samples))
		for n := range samples {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			units := make([]string, 0, len(samples[n]))
			for u := range samples[n] {
				units = append(units, u)
			}
			sort.Strings(units)
			for _, u := range units {
				fmt.Fprintf(tw, "%s\t%s\t%.4g\t%d\t\t\t\t\n", n, u, median(samples[n][u]), len(samples[n][u]))
			}
		}
	}
	_ = tw.Flush()
}

// paired is the median of a[k]/b[k], or "-" when the sides have different
// numbers of runs (or a baseline run is zero). Runs are matched by
// position: the k-th line of each side, which is the same round only when
// every round printed both (the benchmark scripts stop at a failed run).
func paired(a, b []float64) string {
	if len(a) != len(b) {
		return "-"
	}
	r := make([]float64, len(a))
	for k := range a {
		if b[k] == 0 {
			return "-"
		}
		r[k] = a[k] / b[k]
	}
	return fmt.Sprintf("%.3f", median(r))
}

// lookup returns the samples of name (or name@unit, overriding unit).
func lookup(s map[string]map[string][]float64, name, unit string) []float64 {
	if i := strings.LastIndex(name, "@"); i > 0 {
		name, unit = name[:i], name[i+1:]
	}
	return s[name][unit]
}

func meets(ratio float64, target string) (bool, error) {
	switch {
	case strings.HasPrefix(target, ">="):
		v, err := strconv.ParseFloat(target[2:], 64)
		return ratio >= v, err
	case strings.HasPrefix(target, "<="):
		v, err := strconv.ParseFloat(target[2:], 64)
		return ratio <= v, err
	}
	return false, fmt.Errorf("bad target %q", target)
}
