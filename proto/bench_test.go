package proto

import (
	"bytes"
	"encoding/json"
	"testing"
)

func shareList1000() *ShareAdd {
	entries := make(List[FileEntry], MaxShareBatch)
	for i := range entries {
		entries[i] = sampleEntry(i)
	}
	return &ShareAdd{Entries: entries}
}

// BenchmarkShareList encodes and decodes a 1,000-entry share list as a
// Strata frame and, for comparison, with encoding/json. ns/entry is the
// figure to compare.
func BenchmarkShareList(b *testing.B) {
	m := shareList1000()
	frame, _ := AppendFrame(nil, m)
	js, _ := json.Marshal(m)
	n := float64(len(m.Entries))
	b.Run("codec=msgpack/op=encode", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		w := NewWriter(&buf)
		for b.Loop() {
			buf.Reset()
			if err := w.WriteMsg(m); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/entry")
	})
	b.Run("codec=msgpack/op=decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := NewReader(bytes.NewReader(frame), 0)
			if _, err := r.ReadMsg(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/entry")
	})
	b.Run("codec=json/op=encode", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			if err := json.NewEncoder(&buf).Encode(m); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/entry")
	})
	b.Run("codec=json/op=decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out struct{ Entries []FileEntry }
			if err := json.Unmarshal(js, &out); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/entry")
	})
}
