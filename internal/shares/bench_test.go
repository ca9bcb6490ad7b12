package shares

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
)

// benchFolder writes n files of size bytes each and returns the folder and
// the total size.
func benchFolder(b *testing.B, n, size int) (string, int64) {
	b.Helper()
	dir := b.TempDir()
	for i := range n {
		writeFile(b, filepath.Join(dir, fmt.Sprintf("d%d", i%8), fmt.Sprintf("f%05d.bin", i)), randomBytes(uint64(i), size), past)
	}
	return dir, int64(n) * int64(size)
}

// BenchmarkScan compares a first scan (every file hashed) with a rescan of
// the same folder (every file found in the hash cache). The files are in the
// page cache, so "fresh" measures hashing and copying, not the disk:
//
//	go test ./internal/shares -run '^$' -bench Scan -benchtime 5x
func BenchmarkScan(b *testing.B) {
	ctx := context.Background()
	for _, f := range []struct{ n, size int }{{32, 8 << 20}, {4000, 16 << 10}} {
		dir, total := benchFolder(b, f.n, f.size)
		name := fmt.Sprintf("%dx%dKiB", f.n, f.size>>10)

		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/fresh/workers=%d", name, workers), func(b *testing.B) {
				b.SetBytes(total)
				for b.Loop() {
					l, err := Open(Config{Dirs: []string{dir}, HashWorkers: workers, Logger: zap.NewNop()})
					if err != nil {
						b.Fatal(err)
					}
					if _, err := l.Scan(ctx, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(f.n)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
			})
		}

		b.Run(name+"/rescan", func(b *testing.B) {
			l, err := Open(Config{Dirs: []string{dir}, StateDir: b.TempDir(), Logger: zap.NewNop()})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			if _, err := l.Scan(ctx, nil); err != nil {
				b.Fatal(err)
			}
			hashed := l.Stats().HashedBytes
			b.SetBytes(total)
			for b.Loop() {
				if _, err := l.Scan(ctx, nil); err != nil {
					b.Fatal(err)
				}
			}
			if l.Stats().HashedBytes != hashed {
				b.Fatal("rescan hashed files")
			}
			b.ReportMetric(float64(f.n)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
		})

		b.Run(name+"/reopen", func(b *testing.B) { // a restart: load the cache, then scan
			state := b.TempDir()
			l, _ := Open(Config{Dirs: []string{dir}, StateDir: state, Logger: zap.NewNop()})
			if _, err := l.Scan(ctx, nil); err != nil {
				b.Fatal(err)
			}
			l.Close()
			b.SetBytes(total)
			start := time.Now()
			for b.Loop() {
				l, err := Open(Config{Dirs: []string{dir}, StateDir: state, Logger: zap.NewNop()})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := l.Scan(ctx, nil); err != nil {
					b.Fatal(err)
				}
				if l.Stats().HashedBytes != 0 {
					b.Fatal("scan after reopen hashed files")
				}
			}
			b.ReportMetric(float64(f.n)*float64(b.N)/time.Since(start).Seconds(), "files/s")
		})
	}
}
