package index

import (
	"flag"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/strata-p2p/strata/internal/index/corpus"
	"github.com/strata-p2p/strata/proto"
)

// benchFiles sets the corpus size of the benchmarks:
//
//	go test -run '^$' -bench . ./internal/index -args -files=1000000
var benchFiles = flag.Int("files", 100_000, "number of files in benchmark corpora")

// filesPerOwner is how many files each synthetic leaf shares in benchmarks
// (OpenNap's typical share list; the Napster cap is 5,000).
const filesPerOwner = 1000

// benchLimit is the result cap of benchmark queries: Napster's 100 results.
const benchLimit = 100

func textBytes(files []proto.FileEntry) int {
	n := 0
	for i := range files {
		e := &files[i]
		n += len(e.Name) + len(e.Artist) + len(e.Title) + len(e.Album)
	}
	return n
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func build(files []proto.FileEntry) *Index {
	x := New()
	for i := range files {
		x.Add(uint32(i/filesPerOwner), &files[i])
	}
	return x
}

func BenchmarkIndexBuild(b *testing.B) {
	files := corpus.Generate(1, *benchFiles)
	text := textBytes(files)
	var perFile float64
	var x *Index
	start := time.Now()
	for b.Loop() {
		x = nil
		before := heapAlloc()
		x = build(files)
		perFile = (float64(heapAlloc()) - float64(before) - float64(text)) / float64(len(files))
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N*len(files))/elapsed.Seconds(), "files/s")
	b.ReportMetric(perFile, "heap-B/file")
	b.ReportMetric(float64(x.Bytes()-text)/float64(len(files)), "est-B/file")
	b.ReportMetric(float64(x.Terms()), "terms")
	runtime.KeepAlive(x)
}

func benchQueries(b *testing.B, limit int) {
	files := corpus.Generate(1, *benchFiles)
	x := build(files)
	var qs []*Query
	for _, s := range corpus.Queries(2, 10_000) {
		q, err := ParseQuery(s)
		if err != nil {
			b.Fatal(err)
		}
		qs = append(qs, q)
	}
	lat := make([]time.Duration, 0, 1<<20)
	runtime.GC()
	hits := 0
	fn := func(uint32, proto.FileEntry) bool { hits++; return true }
	b.ResetTimer()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		x.Search(qs[i%len(qs)], limit, fn)
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "queries/s")
	b.ReportMetric(float64(hits)/float64(len(lat)), "hits/query")
}

// BenchmarkIndexQuery2Words measures two-word queries capped at 100 results,
// as a supernode answers them.
func BenchmarkIndexQuery2Words(b *testing.B) { benchQueries(b, benchLimit) }

// BenchmarkIndexQuery2WordsAll visits every match of each query.
func BenchmarkIndexQuery2WordsAll(b *testing.B) { benchQueries(b, 0) }

// BenchmarkRemoveOwner drops a leaf of 5,000 files from a full index (and
// adds it back, untimed).
func BenchmarkRemoveOwner(b *testing.B) {
	files := corpus.Generate(1, *benchFiles)
	x := build(files)
	leaf := corpus.Generate(99, 5000)
	const owner = 1 << 30
	for i := range leaf {
		x.Add(owner, &leaf[i])
	}
	b.ResetTimer()
	for b.Loop() {
		if n := x.RemoveOwner(owner); n != len(leaf) {
			b.Fatalf("RemoveOwner removed %d files, want %d", n, len(leaf))
		}
		b.StopTimer()
		for i := range leaf {
			x.Add(owner, &leaf[i])
		}
		b.StartTimer()
	}
}

func BenchmarkParseQuery(b *testing.B) {
	qs := []string{"beatles yesterday", "Sigur Rós Ágætis byrjun size>5MB ext:mp3 bitrate>=192", "love remix duration<3m30s type:audio"}
	for i := 0; b.Loop(); i++ {
		if _, err := ParseQuery(qs[i%len(qs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkByContentID looks up the holders of one file (what a download
// asks every supernode its query reaches) through the content ID chains,
// beside the record scan it replaced, on the same index.
func BenchmarkByContentID(b *testing.B) {
	files := corpus.Generate(1, *benchFiles)
	x := build(files)
	scan := func(cid proto.ContentID, fn func(uint32, proto.FileEntry) bool) {
		for p, page := range x.docs.pages {
			for i := range page {
				if d := &page[i]; d.flags&flagLive != 0 && d.cid == cid && !fn(d.owner, x.entry(uint32(p<<docPageShift+i))) {
					return
				}
			}
		}
	}
	for _, impl := range []string{"chains", "scan"} {
		b.Run("impl="+impl, func(b *testing.B) {
			found := 0
			for i := 0; b.Loop(); i++ {
				cid := files[(i*7919)%len(files)].ContentID
				visit := func(uint32, proto.FileEntry) bool { found++; return true }
				if impl == "chains" {
					x.ByContentID(cid, 0, visit)
				} else {
					scan(cid, visit)
				}
			}
			if found < b.N {
				b.Fatalf("found %d holders in %d lookups of present files", found, b.N)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/lookup")
		})
	}
}
