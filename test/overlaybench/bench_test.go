// Package overlaybench measures the overlay over real QUIC on loopback:
// search latency through 0-3 supernode hops beside a raw QUIC
// request/response round trip, and the cost of a leaf joining (bootstrap,
// attach, 1,000-file share list indexed).
package overlaybench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-p2p/strata/bootstrap"
	"github.com/strata-p2p/strata/internal/identity"
	"github.com/strata-p2p/strata/internal/overlaytest"
	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/internal/transport/quicnet"
	"github.com/strata-p2p/strata/proto"
	"github.com/strata-p2p/strata/supernode"
)

func listen(b *testing.B) *quicnet.Transport {
	b.Helper()
	id, err := identity.Generate()
	if err != nil {
		b.Fatal(err)
	}
	tr, err := quicnet.Listen("127.0.0.1:0", id, quicnet.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.Close() })
	return tr
}

func fileEntry(n int, name string) proto.FileEntry {
	return proto.FileEntry{ContentID: proto.ContentID{byte(n), byte(n >> 8), byte(n >> 16), 1}, Name: name, Size: 4 << 20, Media: proto.MediaAudio}
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

var fastLeaves = supernode.Config{MeshDegree: 1, LeafQueryRate: 1e6, LeafQueryBurst: 1e6}

// BenchmarkSearchLatency: four supernodes in a line over QUIC on loopback,
// each holding one file of its own; a leaf on the first searches for each
// in turn (0, 1, 2, 3 supernode hops) and times the first hit. Beside it, a
// raw QUIC request/response round trip (64 bytes on a new stream, echoed)
// over a connection between two other endpoints, measured in the same run.
func BenchmarkSearchLatency(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var hosts []*overlaytest.Host
	for i := range 4 {
		h := overlaytest.NewHost(ctx, listen(b), supernode.RuntimeConfig{Core: fastLeaves, TickEvery: 20 * time.Millisecond})
		defer h.Close()
		h.RT.With(func(c *supernode.Core) {
			_, _ = c.AddShares(h.TR.LocalPeer(), []proto.FileEntry{fileEntry(i+1, fmt.Sprintf("target%d song.mp3", i))})
		})
		if i > 0 {
			h.Link(hosts[i-1])
		}
		hosts = append(hosts, h)
	}
	for i := 1; i < 4; i++ {
		deadline := time.Now().Add(10 * time.Second)
		for !hosts[i-1].HasNeighbour(hosts[i].TR.LocalPeer()) {
			if time.Now().After(deadline) {
				b.Fatalf("mesh link %d-%d did not come up", i, i+1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	leaf, err := overlaytest.Attach(ctx, listen(b), hosts[0].Info(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer leaf.Close()

	// Raw round trip: an echo server on a plain transport pair.
	echo, client := listen(b), listen(b)
	go func() {
		for {
			c, err := echo.Accept(ctx)
			if err != nil {
				return
			}
			go func(c transport.Conn) {
				for {
					s, err := c.AcceptStream(ctx)
					if err != nil {
						return
					}
					go func() { _, _ = io.Copy(s, s); _ = s.Close() }()
				}
			}(c)
		}
	}()
	rawConn, err := client.Dial(ctx, echo.Addr().String(), echo.LocalPeer())
	if err != nil {
		b.Fatal(err)
	}
	rtt := func() time.Duration {
		start := time.Now()
		s, err := rawConn.OpenStream(ctx)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 64)
		_, _ = s.Write(buf)
		_ = s.Close()
		if _, err := io.ReadFull(s, buf); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}

	var lat [4][]time.Duration
	var raw []time.Duration
	b.ResetTimer()
	for b.Loop() {
		raw = append(raw, rtt())
		for hop := range 4 {
			want := fmt.Sprintf("target%d", hop)
			_, first, err := leaf.Search(ctx, want, 2*time.Second, func(proto.Hit) bool { return true })
			if err != nil || first == 0 {
				b.Fatalf("search %s: no hit (%v)", want, err)
			}
			lat[hop] = append(lat[hop], first)
		}
	}
	rawP50 := percentile(raw, 0.5)
	b.ReportMetric(us(rawP50), "rtt-p50-µs")
	b.ReportMetric(us(percentile(raw, 0.99)), "rtt-p99-µs")
	for hop := range 4 {
		b.ReportMetric(us(percentile(lat[hop], 0.5)), fmt.Sprintf("hops%d-p50-µs", hop))
		b.ReportMetric(us(percentile(lat[hop], 0.99)), fmt.Sprintf("hops%d-p99-µs", hop))
		if hop > 0 {
			perHop := (percentile(lat[hop], 0.5) - percentile(lat[0], 0.5)) / time.Duration(hop)
			b.ReportMetric(float64(perHop)/float64(rawP50), fmt.Sprintf("hops%d-per-hop/rtt", hop))
		}
	}
}

// BenchmarkJoin: a leaf asks the bootstrap server for a supernode, dials it,
// attaches, uploads a 1,000-file share list and waits until it is indexed.
// impl=sequential reports the latency of one join; impl=parallel how many
// joins per second one supernode takes with 8 leaves joining at once.
func BenchmarkJoin(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bsTr := listen(b)
	bs, err := bootstrap.New(bootstrap.DefaultConfig(), bsTr.LocalPeer())
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = bs.Serve(ctx, bsTr) }()
	defer bs.Close()
	sn := overlaytest.NewHost(ctx, listen(b), supernode.RuntimeConfig{Core: supernode.Config{MaxLeaves: 1000}})
	defer sn.Close()
	reg := bootstrap.NewClient(sn.TR, overlaytest.HelloFor(proto.RoleSupernode, sn.TR), nil)
	defer reg.Close()
	register := func() error {
		_, err := reg.Register(ctx, []string{bsTr.Addr().String()}, []string{sn.TR.Addr().String()}, proto.Load{Capacity: 1000})
		return err
	}
	if err := register(); err != nil {
		b.Fatal(err)
	}
	// Heartbeat like a real supernode, or the bootstrap forgets it.
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = register()
			}
		}
	}()
	files := make([]proto.FileEntry, 1000)
	for i := range files {
		files[i] = fileEntry(i+1, fmt.Sprintf("Artist %d - Song number %d (remastered).mp3", i%97, i))
	}
	leafTrs := make([]*quicnet.Transport, 8)
	for i := range leafTrs {
		leafTrs[i] = listen(b)
	}
	// join returns how long one join took; errors go to errc (workers must
	// not call b.Fatal from their own goroutines).
	join := func(tr transport.Transport) (time.Duration, error) {
		start := time.Now()
		c := bootstrap.NewClient(tr, overlaytest.HelloFor(proto.RoleLeaf, tr), nil)
		reply, _, err := c.Join(ctx, []string{bsTr.Addr().String()}, proto.RoleLeaf)
		c.Close()
		if err != nil || len(reply.Supernodes) == 0 {
			return 0, fmt.Errorf("join: %v %+v", err, reply)
		}
		leaf, err := overlaytest.Attach(ctx, tr, reply.Supernodes[0], files)
		if err != nil {
			return 0, err
		}
		took := time.Since(start)
		leaf.Close()
		return took, nil
	}
	// settle waits (untimed) until the supernode has dropped every leaf, so
	// one join's timing does not include the previous leaf's detach.
	settle := func() {
		for {
			n := 0
			sn.RT.With(func(c *supernode.Core) { n = len(c.Leaves()) })
			if n == 0 {
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	b.Run("impl=sequential", func(b *testing.B) {
		var lat []time.Duration
		i := 0
		for b.Loop() {
			took, err := join(leafTrs[i%len(leafTrs)])
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, took)
			i++
			b.StopTimer()
			settle()
			b.StartTimer()
		}
		b.ReportMetric(us(percentile(lat, 0.5))/1000, "join-p50-ms")
		b.ReportMetric(us(percentile(lat, 0.99))/1000, "join-p99-ms")
	})
	b.Run("impl=parallel", func(b *testing.B) {
		var wg sync.WaitGroup
		work := make(chan struct{})
		errc := make(chan error, len(leafTrs))
		for _, tr := range leafTrs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range work {
					if _, err := join(tr); err != nil {
						errc <- err
						for range work { // keep draining so the sender never blocks
						}
						return
					}
				}
			}()
		}
		for b.Loop() {
			work <- struct{}{}
		}
		close(work)
		wg.Wait()
		select {
		case err := <-errc:
			b.Fatal(err)
		default:
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joins/s")
	})
}
