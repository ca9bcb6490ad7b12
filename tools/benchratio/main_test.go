package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseAndMedian(t *testing.T) {
	in := `goos: linux
BenchmarkX/impl=a-2   1  300 ns/op  10.0 MB/s
BenchmarkX/impl=a-2   1  100 ns/op  30.0 MB/s
BenchmarkX/impl=a-2   1  200 ns/op  20.0 MB/s
PASS`
	s, err := parse(strings.NewReader(in), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := median(s["BenchmarkX/impl=a"]["MB/s"]); got != 20 {
		t.Fatalf("median MB/s = %v, want 20", got)
	}
	if got := lookup(s, "BenchmarkX/impl=a@ns/op", "MB/s"); median(got) != 200 {
		t.Fatalf("name@unit lookup = %v, want the ns/op samples", got)
	}
	if got := paired([]float64{10, 20, 90}, []float64{20, 10, 100}); got != "0.900" {
		t.Fatalf("paired = %s, want the median of 0.5, 2, 0.9", got)
	}
	if got := paired([]float64{1, 2}, []float64{1}); got != "-" {
		t.Fatalf("paired with unequal runs = %s, want -", got)
	}
	if ok, _ := meets(0.96, ">=0.95"); !ok {
		t.Fatal("0.96 should meet >=0.95")
	}
	if ok, _ := meets(0.94, ">=0.95"); ok {
		t.Fatal("0.94 should miss >=0.95")
	}
}
