// Command indexbench builds Strata's keyword index (internal/index) and
// bleve's in-memory index from the same synthetic corpus, in one run, and
// compares them: build rate, heap per file beyond the text, and two-word AND
// query latency and throughput on one core. It lives in its own module so
// that the strata binary never links bleve.
//
//	cd bench/bleve && go run ./cmd/indexbench -files 1000000 -runs 3
//
// Figures are medians over -runs. Each run builds both indexes afresh. Heap
// is measured with runtime.GC and runtime.ReadMemStats before and after a
// build, less the bytes of the files' text (name, artist, title, album), the
// same subtraction for both. Queries run with GOMAXPROCS=1 and are timed from
// their text, so parsing (ours) and analysis (bleve's) are included.
//
// What each side holds, so the figures are read fairly: Strata keeps every
// file whole (text, content ID, size, media type, bitrate, sample rate,
// duration, owner) and can filter on and return all of it. Bleve is given one
// indexed text field per file (name, artist, title and album, analysed like
// ours: ASCII folding, split on anything not a letter or digit, lowercase,
// words of two or more characters), with nothing stored, no numeric fields
// and no term vectors, which is the least it can hold to answer the same
// word queries; a hit is a document ID. Bleve's build uses both cores (its
// analysis runs in goroutines); ours uses one.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/char/asciifolding"
	"github.com/blevesearch/bleve/v2/analysis/token/length"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/character"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/registry"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/strata-p2p/strata/internal/index"
	"github.com/strata-p2p/strata/internal/index/corpus"
	"github.com/strata-p2p/strata/proto"
)

// Targets for Strata's index at one million files.
const (
	targetBytesPerFile = 150
	targetP99          = 100 * time.Microsecond
	targetQPS          = 50_000
)

// filesPerOwner is how many files each synthetic leaf shares.
const filesPerOwner = 1000

// autoBleveFiles caps bleve's corpus unless -bleve-files says otherwise: its
// in-memory index built 1M files in 218 s on the 2-core machine this was
// written on, too slow for several runs.
const autoBleveFiles = 200_000

// agreeQueries is how many queries are checked for equal hit counts.
const agreeQueries = 200

type options struct {
	files, bleveFiles, runs int
	queries, bleveQueries   int
	limit                   int
	seed                    int64
	json                    bool
	bleveBatch              int
	skipBleve               bool
}

// Measure is one engine's figures from one run (or their medians).
type Measure struct {
	Files         int     `json:"files"`
	BuildSeconds  float64 `json:"build_seconds"`
	FilesPerSec   float64 `json:"build_files_per_sec"`
	HeapPerFile   float64 `json:"heap_bytes_per_file"` // beyond the text
	Queries       int     `json:"queries"`
	P50us         float64 `json:"query_p50_us"`
	P99us         float64 `json:"query_p99_us"`
	QPS           float64 `json:"queries_per_sec"`
	HitsPerQuery  float64 `json:"hits_per_query"`
	AllP50us      float64 `json:"all_matches_p50_us,omitempty"` // Strata only: every match visited
	AllP99us      float64 `json:"all_matches_p99_us,omitempty"`
	AllQPS        float64 `json:"all_matches_queries_per_sec,omitempty"`
	EstimatePerFd float64 `json:"index_bytes_estimate_per_file,omitempty"` // Strata only: Index.Bytes
}

// Report is the whole result, as -json prints it.
type Report struct {
	Files          int       `json:"files"`
	BleveFiles     int       `json:"bleve_files"`
	Runs           int       `json:"runs"`
	Limit          int       `json:"limit"`
	TextBytes      int       `json:"text_bytes"`
	AvgNameBytes   float64   `json:"avg_name_bytes"`
	BleveVersion   string    `json:"bleve_version"`
	GoVersion      string    `json:"go_version"`
	CPUs           int       `json:"cpus"`
	Strata         Measure   `json:"strata"`
	Bleve          *Measure  `json:"bleve,omitempty"`
	StrataRuns     []Measure `json:"strata_runs"`
	BleveRuns      []Measure `json:"bleve_runs,omitempty"`
	AgreeChecked   int       `json:"hit_count_checked"`
	AgreeEqual     int       `json:"hit_count_equal"`
	Disagreements  []string  `json:"hit_count_disagreements,omitempty"`
	TargetsMet     bool      `json:"targets_met"`
	WallSeconds    float64   `json:"wall_seconds"`
	BleveFilesNote string    `json:"bleve_files_note,omitempty"`
}

func main() {
	var o options
	flag.IntVar(&o.files, "files", 1_000_000, "files in the corpus and in Strata's index")
	flag.IntVar(&o.bleveFiles, "bleve-files", 0, fmt.Sprintf("files in bleve's index (default: -files, at most %d; bleve builds only a few thousand files a second)", autoBleveFiles))
	flag.IntVar(&o.runs, "runs", 3, "runs; figures are medians")
	flag.IntVar(&o.queries, "queries", 20_000, "two-word queries timed per run on Strata's index")
	flag.IntVar(&o.bleveQueries, "bleve-queries", 1_000, "queries timed per run on bleve's index (the first of the same list)")
	flag.IntVar(&o.limit, "limit", 100, "results per query (Napster's cap is 100)")
	flag.Int64Var(&o.seed, "seed", 1, "corpus seed")
	flag.IntVar(&o.bleveBatch, "bleve-batch", 1000, "documents per bleve batch")
	flag.BoolVar(&o.json, "json", false, "print the results as JSON")
	flag.BoolVar(&o.skipBleve, "no-bleve", false, "measure Strata's index only")
	flag.Parse()
	if o.bleveFiles <= 0 {
		o.bleveFiles = min(o.files, autoBleveFiles)
	}
	o.bleveFiles = min(o.bleveFiles, o.files)
	if o.files <= 0 || o.runs <= 0 || o.queries <= 0 || o.bleveQueries <= 0 || o.limit < 0 {
		fmt.Fprintln(os.Stderr, "indexbench: -files, -runs, -queries and -bleve-queries must be positive and -limit not negative")
		os.Exit(2)
	}
	rep, err := run(o, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "indexbench:", err)
		os.Exit(1)
	}
	if o.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
		return
	}
	printTable(os.Stdout, rep)
}

func run(o options, log io.Writer) (*Report, error) {
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(log, "[%5.1fs] "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
	}
	logf("generating %d files (seed %d)", o.files, o.seed)
	files := corpus.Generate(o.seed, o.files)
	texts := corpus.Queries(o.seed+1, o.queries)
	rep := &Report{
		Files: o.files, BleveFiles: o.bleveFiles, Runs: o.runs, Limit: o.limit,
		TextBytes: textBytes(files), BleveVersion: moduleVersion("github.com/blevesearch/bleve/v2"),
		GoVersion: runtime.Version(), CPUs: runtime.NumCPU(),
	}
	names := 0
	for i := range files {
		names += len(files[i].Name)
	}
	rep.AvgNameBytes = float64(names) / float64(len(files))
	if o.bleveFiles < o.files && !o.skipBleve {
		rep.BleveFilesNote = fmt.Sprintf("bleve indexed %d of the %d files, not all of them: its in-memory index builds at a few "+
			"thousand files a second, minutes per run at a million (pass -bleve-files %d for the full comparison). "+
			"Per-file and per-query figures are shown, but bleve's query latency grows with its index, so the smaller index flatters it.",
			o.bleveFiles, o.files, o.files)
	}

	var strataCounts []int
	for r := range o.runs {
		logf("run %d/%d: strata: building %d files", r+1, o.runs, o.files)
		m, counts := measureStrata(files, texts, o.limit, o.bleveFiles)
		logf("run %d/%d: strata: %.0f files/s, %.1f B/file, p50 %.1fµs p99 %.1fµs, %.0f q/s", r+1, o.runs, m.FilesPerSec, m.HeapPerFile, m.P50us, m.P99us, m.QPS)
		rep.StrataRuns = append(rep.StrataRuns, m)
		strataCounts = counts
		if o.skipBleve {
			continue
		}
		logf("run %d/%d: bleve: building %d files", r+1, o.runs, o.bleveFiles)
		bm, bleveCounts, err := measureBleve(files[:o.bleveFiles], texts[:min(len(texts), o.bleveQueries)], o.limit, o.bleveBatch)
		if err != nil {
			return nil, err
		}
		logf("run %d/%d: bleve: %.0f files/s, %.1f B/file, p50 %.1fµs p99 %.1fµs, %.0f q/s", r+1, o.runs, bm.FilesPerSec, bm.HeapPerFile, bm.P50us, bm.P99us, bm.QPS)
		rep.BleveRuns = append(rep.BleveRuns, bm)
		if r == 0 {
			for i := range min(len(strataCounts), len(bleveCounts)) {
				rep.AgreeChecked++
				if strataCounts[i] == bleveCounts[i] {
					rep.AgreeEqual++
				} else if len(rep.Disagreements) < 5 {
					rep.Disagreements = append(rep.Disagreements, fmt.Sprintf("%q: strata %d, bleve %d", texts[i], strataCounts[i], bleveCounts[i]))
				}
			}
		}
	}
	rep.Strata = median(rep.StrataRuns)
	if len(rep.BleveRuns) > 0 {
		b := median(rep.BleveRuns)
		rep.Bleve = &b
	}
	rep.TargetsMet = rep.Strata.HeapPerFile <= targetBytesPerFile && rep.Strata.P99us <= us(targetP99) && rep.Strata.QPS >= targetQPS
	rep.WallSeconds = time.Since(start).Seconds()
	return rep, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func textBytes(files []proto.FileEntry) int {
	n := 0
	for i := range files {
		e := &files[i]
		n += len(e.Name) + len(e.Artist) + len(e.Title) + len(e.Album)
	}
	return n
}

// heapAlloc returns the live heap. It collects until the figure stops
// falling: objects with finalizers (bleve's leave some) are only freed by
// the collection after the one that ran their finalizers.
func heapAlloc() uint64 {
	var m runtime.MemStats
	last := uint64(math.MaxUint64)
	for range 5 {
		runtime.GC()
		runtime.ReadMemStats(&m)
		if m.HeapAlloc >= last-last/1000 {
			break
		}
		last = m.HeapAlloc
	}
	return m.HeapAlloc
}

// timed runs fn once per query text with GOMAXPROCS=1 and returns the
// latencies, sorted, and the wall time of the whole loop.
func timed(texts []string, fn func(i int, text string)) ([]time.Duration, time.Duration) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	runtime.GC()
	lat := make([]time.Duration, len(texts))
	start := time.Now()
	for i, t := range texts {
		t0 := time.Now()
		fn(i, t)
		lat[i] = time.Since(t0)
	}
	wall := time.Since(start)
	slices.Sort(lat)
	return lat, wall
}

func pct(lat []time.Duration, p float64) float64 {
	return us(lat[int(math.Round(p*float64(len(lat)-1)))])
}

// measureStrata builds Strata's index over files and times the queries. It
// also returns the full hit count of the first queries over the first
// agreeFiles files, to check against bleve.
func measureStrata(files []proto.FileEntry, texts []string, limit, agreeFiles int) (Measure, []int) {
	m := Measure{Files: len(files), Queries: len(texts)}
	before := heapAlloc()
	start := time.Now()
	x := index.New()
	for i := range files {
		x.Add(uint32(i/filesPerOwner), &files[i])
	}
	m.BuildSeconds = time.Since(start).Seconds()
	m.FilesPerSec = float64(len(files)) / m.BuildSeconds
	text := textBytes(files)
	m.HeapPerFile = (float64(heapAlloc()) - float64(before) - float64(text)) / float64(len(files))
	m.EstimatePerFd = float64(x.Bytes()-text) / float64(len(files))

	hits := 0
	search := func(limit int) func(int, string) {
		return func(_ int, text string) {
			q, err := index.ParseQuery(text)
			if err != nil {
				panic(fmt.Sprintf("query %q: %v", text, err)) // the generator makes only valid queries
			}
			x.Search(q, limit, func(uint32, proto.FileEntry) bool { hits++; return true })
		}
	}
	lat, wall := timed(texts, search(limit))
	m.P50us, m.P99us = pct(lat, 0.50), pct(lat, 0.99)
	m.QPS = float64(len(texts)) / wall.Seconds()
	m.HitsPerQuery = float64(hits) / float64(len(texts))
	lat, wall = timed(texts, search(0))
	m.AllP50us, m.AllP99us = pct(lat, 0.50), pct(lat, 0.99)
	m.AllQPS = float64(len(texts)) / wall.Seconds()

	// Hit counts for the agreement check, over the files bleve indexes.
	ax := x
	if agreeFiles < len(files) {
		x = nil
		ax = index.New()
		for i := range files[:agreeFiles] {
			ax.Add(uint32(i/filesPerOwner), &files[i])
		}
	}
	counts := make([]int, min(agreeQueries, len(texts)))
	for i := range counts {
		q, _ := index.ParseQuery(texts[i])
		ax.Search(q, 0, func(uint32, proto.FileEntry) bool { counts[i]++; return true })
	}
	runtime.KeepAlive(x)
	return m, counts
}

// isWordRune splits text as Strata does: on anything not a letter, a digit
// or a spacing mark.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mc, r)
}

func bleveMapping() (mapping.IndexMapping, error) {
	m := bleve.NewIndexMapping()
	if err := m.AddCustomTokenFilter("min2", map[string]any{"type": length.Name, "min": 2.0}); err != nil {
		return nil, err
	}
	if err := m.AddCustomAnalyzer("strata", map[string]any{
		"type":          custom.Name,
		"char_filters":  []string{asciifolding.Name},
		"tokenizer":     "strata_words",
		"token_filters": []string{lowercase.Name, "min2"},
	}); err != nil {
		return nil, err
	}
	text := bleve.NewTextFieldMapping()
	text.Analyzer = "strata"
	text.Store = false
	text.IncludeTermVectors = false
	text.IncludeInAll = false
	text.DocValues = false
	doc := bleve.NewDocumentStaticMapping()
	doc.AddFieldMappingsAt("text", text)
	m.DefaultMapping = doc
	m.DefaultAnalyzer = "strata"
	m.StoreDynamic = false
	m.IndexDynamic = false
	m.DocValuesDynamic = false
	return m, nil
}

type bleveDoc struct {
	Text string `json:"text"`
}

// measureBleve builds bleve's in-memory index over files and times the
// queries; it returns each query's total hit count as well.
func measureBleve(files []proto.FileEntry, texts []string, limit, batchSize int) (Measure, []int, error) {
	m := Measure{Files: len(files), Queries: len(texts)}
	im, err := bleveMapping()
	if err != nil {
		return m, nil, fmt.Errorf("bleve mapping: %w", err)
	}
	before := heapAlloc()
	start := time.Now()
	idx, err := bleve.NewMemOnly(im)
	if err != nil {
		return m, nil, fmt.Errorf("bleve.NewMemOnly: %w", err)
	}
	defer idx.Close()
	b := idx.NewBatch()
	for i := range files {
		e := &files[i]
		doc := bleveDoc{Text: strings.Join([]string{e.Name, e.Artist, e.Title, e.Album}, " ")}
		if err := b.Index(strconv.Itoa(i), doc); err != nil {
			return m, nil, fmt.Errorf("bleve batch: %w", err)
		}
		if b.Size() >= batchSize || i == len(files)-1 {
			if err := idx.Batch(b); err != nil {
				return m, nil, fmt.Errorf("bleve batch: %w", err)
			}
			b.Reset()
		}
	}
	m.BuildSeconds = time.Since(start).Seconds()
	m.FilesPerSec = float64(len(files)) / m.BuildSeconds
	m.HeapPerFile = (float64(heapAlloc()) - float64(before) - float64(textBytes(files))) / float64(len(files))

	size := limit
	if size == 0 {
		size = math.MaxInt32
	}
	counts := make([]int, len(texts))
	hits := 0
	var qerr error
	lat, wall := timed(texts, func(i int, text string) {
		mq := bleve.NewMatchQuery(text)
		mq.SetField("text")
		mq.SetOperator(query.MatchQueryOperatorAnd)
		res, err := idx.Search(bleve.NewSearchRequestOptions(mq, size, 0, false))
		if err != nil {
			qerr = err
			return
		}
		counts[i] = int(res.Total)
		hits += len(res.Hits)
	})
	if qerr != nil {
		return m, nil, fmt.Errorf("bleve search: %w", qerr)
	}
	m.P50us, m.P99us = pct(lat, 0.50), pct(lat, 0.99)
	m.QPS = float64(len(texts)) / wall.Seconds()
	m.HitsPerQuery = float64(hits) / float64(len(texts))
	return m, counts[:min(agreeQueries, len(counts))], nil
}

func median(ms []Measure) Measure {
	med := func(f func(Measure) float64) float64 {
		v := make([]float64, len(ms))
		for i, m := range ms {
			v[i] = f(m)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return Measure{
		Files:         ms[0].Files,
		Queries:       ms[0].Queries,
		BuildSeconds:  med(func(m Measure) float64 { return m.BuildSeconds }),
		FilesPerSec:   med(func(m Measure) float64 { return m.FilesPerSec }),
		HeapPerFile:   med(func(m Measure) float64 { return m.HeapPerFile }),
		P50us:         med(func(m Measure) float64 { return m.P50us }),
		P99us:         med(func(m Measure) float64 { return m.P99us }),
		QPS:           med(func(m Measure) float64 { return m.QPS }),
		HitsPerQuery:  med(func(m Measure) float64 { return m.HitsPerQuery }),
		AllP50us:      med(func(m Measure) float64 { return m.AllP50us }),
		AllP99us:      med(func(m Measure) float64 { return m.AllP99us }),
		AllQPS:        med(func(m Measure) float64 { return m.AllQPS }),
		EstimatePerFd: med(func(m Measure) float64 { return m.EstimatePerFd }),
	}
}

func printTable(w io.Writer, r *Report) {
	fmt.Fprintf(w, "indexbench: %d files (%.1f-byte names on average, %.1f bytes of text per file), runs: %d (figures are medians); %s, %d CPUs, bleve %s\n",
		r.Files, r.AvgNameBytes, float64(r.TextBytes)/float64(r.Files), r.Runs, r.GoVersion, r.CPUs, r.BleveVersion)
	fmt.Fprintf(w, "queries: %d two-word AND queries per run on Strata, the first %d of them on bleve; at most %d results each; GOMAXPROCS=1 while querying\n",
		r.Strata.Queries, queriesOf(r.Bleve), r.Limit)
	if r.BleveFilesNote != "" {
		fmt.Fprint(w, wrap("NOTE: "+r.BleveFilesNote, 110))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tstrata\tbleve\tstrata/bleve\ttarget\tmet\t")
	row := func(name string, s, b float64, format, target string, met bool) {
		bs, ratio := "-", "-"
		if r.Bleve != nil {
			bs = fmt.Sprintf(format, b)
			ratio = ratioText(s / b)
		}
		ok := "-"
		if target != "-" {
			ok = map[bool]string{true: "yes", false: "NO"}[met]
		}
		fmt.Fprintf(tw, "%s\t"+format+"\t%s\t%s\t%s\t%s\t\n", name, s, bs, ratio, target, ok)
	}
	var b Measure
	if r.Bleve != nil {
		b = *r.Bleve
	}
	s := r.Strata
	row("build (files/s, higher is better)", s.FilesPerSec, b.FilesPerSec, "%.0f", "-", false)
	row("heap beyond text (B/file)", s.HeapPerFile, b.HeapPerFile, "%.1f", fmt.Sprintf("<= %d", targetBytesPerFile), s.HeapPerFile <= targetBytesPerFile)
	row("2-word AND p50 (µs)", s.P50us, b.P50us, "%.1f", "-", false)
	row("2-word AND p99 (µs)", s.P99us, b.P99us, "%.1f", fmt.Sprintf("<= %.0f", us(targetP99)), s.P99us <= us(targetP99))
	row("queries/s, one core", s.QPS, b.QPS, "%.0f", fmt.Sprintf(">= %d", targetQPS), s.QPS >= targetQPS)
	row("results per query", s.HitsPerQuery, b.HitsPerQuery, "%.1f", "-", false)
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintf(w, "strata, every match visited (no limit): p50 %.1fµs, p99 %.1fµs, %.0f queries/s\n", s.AllP50us, s.AllP99us, s.AllQPS)
	fmt.Fprintf(w, "strata build: %.2fs per million files; Index.Bytes estimate %.1f B/file beyond the text\n", s.BuildSeconds*1e6/float64(s.Files), s.EstimatePerFd)
	if r.Bleve != nil {
		fmt.Fprintf(w, "bleve build: %.2fs per million files (NewMemOnly, batches; analysis on every core)\n", b.BuildSeconds*1e6/float64(b.Files))
		fmt.Fprintf(w, "hit counts equal on %d of the first %d queries (Strata visiting every match, bleve's total)\n", r.AgreeEqual, r.AgreeChecked)
		for _, d := range r.Disagreements {
			fmt.Fprintf(w, "  differs: %s\n", d)
		}
	}
	fmt.Fprintf(w, "targets (<= %d B/file, p99 <= %.0fµs, >= %d queries/s): %s\n", targetBytesPerFile, us(targetP99), targetQPS,
		map[bool]string{true: "all met", false: "NOT all met"}[r.TargetsMet])
	fmt.Fprintf(w, "wall time %.0fs\n", r.WallSeconds)
}

// wrap breaks text into lines of at most width bytes, at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	line := 0
	for i, w := range strings.Fields(text) {
		if i > 0 && line+1+len(w) > width {
			b.WriteString("\n      ")
			line = 6
		} else if i > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteByte('\n')
	return b.String()
}

// ratioText writes a ratio without exponents: 74.4x, 0.105x, 1/89.
func ratioText(r float64) string {
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0fx", r)
	case r >= 1:
		return fmt.Sprintf("%.1fx", r)
	case r >= 0.1:
		return fmt.Sprintf("%.3fx", r)
	case r > 0:
		return fmt.Sprintf("1/%.0f", 1/r)
	}
	return "-"
}

func queriesOf(m *Measure) int {
	if m == nil {
		return 0
	}
	return m.Queries
}

func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				return d.Version
			}
		}
	}
	return "(unknown)"
}

func init() {
	// bleve finds tokenizers by name in a process-wide registry; this one
	// splits words as Strata does.
	err := registry.RegisterTokenizer("strata_words", func(map[string]any, *registry.Cache) (analysis.Tokenizer, error) {
		return character.NewCharacterTokenizer(isWordRune), nil
	})
	if err != nil {
		panic(err)
	}
}
