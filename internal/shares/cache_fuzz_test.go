package shares

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadCache feeds arbitrary bytes to the hash-cache reader: a crash or a
// bad disk can leave anything in the file. It must return an error or
// records, never panic, and records it returns must save and load again.
func FuzzLoadCache(f *testing.F) {
	// Seed with a real cache written by a scan.
	dir, state := f.TempDir(), f.TempDir()
	for i, name := range []string{"a.txt", "b song.mp3", "c.bin"} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, 1000*(i+1)+i), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	lib, err := Open(Config{Dirs: []string{dir}, StateDir: state})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := lib.Scan(context.Background(), nil); err != nil {
		f.Fatal(err)
	}
	if err := lib.Close(); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(filepath.Join(state, CacheFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte{})
	// In memory: the file half (atomic write, fsync) has its own tests, and
	// an fsync stalled behind other writes must not stall the fuzzer.
	f.Fuzz(func(t *testing.T, in []byte) {
		recs, err := decodeCache(bytes.NewReader(in), int64(len(in)))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := encodeCache(&out, recs); err != nil {
			t.Fatalf("records that loaded do not save: %v", err)
		}
		again, err := decodeCache(&out, int64(out.Len()))
		if err != nil || len(again) != len(recs) {
			t.Fatalf("saved records do not load again: %d of %d, %v", len(again), len(recs), err)
		}
	})
}
