package transfer

import (
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/proto"
)

// A long, narrow path for BenchmarkTransferWAN: 40 ms round trip, 50 MB/s
// (400 Mbit/s) each way, a router buffer of one bandwidth-delay product.
const (
	wanSize  = 128 << 20
	wanDelay = 20 * time.Millisecond // one way
	wanRate  = 50e6
	wanQueue = 2e6
)

// BenchmarkTransferWAN downloads 128 MiB from one holder through a
// delayLine (40 ms round trip, 50 MB/s each way), beside raw quic-go
// through the same line: on a long path, the ranges a download asks for
// one after another must keep the path as full as one long stream does.
// drops is the datagrams the line's buffer turned away per run. No CPU
// figure: the line's own work is in the same process.
func BenchmarkTransferWAN(b *testing.B) {
	b.Run("impl=strata", func(b *testing.B) {
		f := sourceFile(b, wanSize)
		log := zap.NewNop()
		holder := hostOn(b, quicTransport(b, log), f.lib())
		line := newDelayLine(b, holder.tr.Addr().String(), wanDelay, wanRate, wanQueue)
		hit := f.hit(holder, "bench.bin")
		hit.Holder.Addrs = []string{line.Addr()}
		dial := dialer(quicTransport(b, log))
		var cpu cpuMeter
		b.SetBytes(wanSize)
		b.ResetTimer()
		b.StopTimer()
		for range b.N {
			strataRun(b, dial, []proto.Hit{hit}, f, &cpu)
		}
		b.ReportMetric(float64(line.drops())/float64(b.N), "drops")
	})
	b.Run("impl=quic-go-raw", func(b *testing.B) {
		f := sourceFile(b, wanSize)
		line := newDelayLine(b, rawQUICServer(b, f), wanDelay, wanRate, wanQueue)
		var cpu cpuMeter
		b.SetBytes(wanSize)
		for b.Loop() {
			rawQUICRun(b, line.Addr(), wanSize, &cpu)
		}
		b.ReportMetric(float64(line.drops())/float64(b.N), "drops")
	})
}
