package bootstrap

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/strata-p2p/strata/proto"
)

// benchRegistry holds n supernodes, a third of them full.
func benchRegistry(b *testing.B, n int) *Registry {
	r, err := NewRegistry(Config{MaxSupernodes: n, Rand: rand.New(rand.NewPCG(1, 1))})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		load := proto.Load{Capacity: 100, Leaves: uint32(i % 150)}
		if _, err := r.Register(t0, pid(i), []string{"10.0.0.1:7400"}, "10.0.0.1:7400", load); err != nil {
			b.Fatal(err)
		}
	}
	return r
}

func BenchmarkJoin10k(b *testing.B) {
	r := benchRegistry(b, 10_000)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Join(t0.Add(time.Duration(i)), pid(20_000), proto.RoleLeaf, "x:1")
	}
}

func BenchmarkRegister10k(b *testing.B) {
	r := benchRegistry(b, 10_000)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := r.Register(t0, pid(i%10_000), []string{"10.0.0.1:7400"}, "10.0.0.1:7400", proto.Load{Capacity: 100}); err != nil {
			b.Fatal(err)
		}
	}
}
