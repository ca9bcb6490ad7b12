package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-p2p/strata/internal/transfer"
	"github.com/strata-p2p/strata/proto"
)

// cpuSeconds is the user+system CPU time of process pid so far.
func cpuSeconds(b testing.TB, pid int) float64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces): state is 3rd.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// BenchmarkReach downloads through the supernode's relay (a holder behind
// a NAT, a getter behind a symmetric NAT) and directly (both public) in the
// same run, on network namespaces of this machine, and reports the rates,
// and the CPU seconds per MB of the supernode and of the getter while each
// ran. The relay's caps are set far above what the machine can carry, so
// the figure is the relay's own cost. STRATA_BENCH_REACH_MB sets the file
// size (default 32).
func BenchmarkReach(b *testing.B) {
	mb := 32
	if v, err := strconv.Atoi(os.Getenv("STRATA_BENCH_REACH_MB")); err == nil && v > 0 {
		mb = v
	}
	size := mb << 20
	net := newReachNet(b)
	bs := startIn(b, net.pub, "bootstrap", "bootstrap", "--listen", "10.99.1.1:0", "--api", "127.0.0.1:0",
		"--state-dir", b.TempDir(), "--log-format", "json", "--log-level", "warn", "--check-in", "300ms",
		"--promotion-request-rate", "100", "--promotion-request-burst", "100")
	sn := startIn(b, net.pub, "supernode", reachNode(b, bs.Ready.QUIC, "10.99.1.1:0", "--role", "supernode",
		"--heartbeat", "250ms", "--log-level", "warn", "--relay-max-rate", "10GB", "--relay-total-rate", "10GB",
		"--relay-session-bytes", "1000GB")...)
	pubShare, natShare := b.TempDir(), b.TempDir()
	pubHolder := startIn(b, net.pub, "public-holder", reachNode(b, bs.Ready.QUIC, "10.99.1.1:0", "--share", pubShare, "--log-level", "warn")...)
	natHolder := startIn(b, net.priv1, "natted-holder", reachNode(b, bs.Ready.QUIC, "0.0.0.0:0", "--share", natShare, "--log-level", "warn")...)
	pubGetter := startIn(b, net.pub, "public-getter", reachNode(b, bs.Ready.QUIC, "10.99.1.1:0", "--log-level", "warn")...)
	symGetter := startIn(b, net.priv3, "symmetric-getter", reachNode(b, bs.Ready.QUIC, "0.0.0.0:0", "--log-level", "warn")...)
	for _, p := range []*proc{pubHolder, natHolder, pubGetter, symGetter} {
		p.WaitAttached()
	}
	natHolder.waitReach(proto.ReachUnreachable)
	symGetter.waitReach(proto.ReachUnreachable)
	for _, c := range []struct {
		path    string
		share   string
		getter  *proc
		wantVia string
	}{{"direct", pubShare, pubGetter, "direct"}, {"relay", natShare, symGetter, "relay"}} {
		b.Run("path="+c.path, func(b *testing.B) {
			var secs, cpu, gcpu, moved float64
			for i := 0; i < b.N; i++ {
				// A new name and new bytes every run (-count reruns the
				// benchmark on the same nodes): a file the getter already
				// has is not fetched again.
				seed := time.Now().UnixNano()
				name := fmt.Sprintf("%s%dbench%d", c.path, i, seed%1_000_000_000)
				want := writeRandom(b, c.share, name+".bin", size, seed)
				cid := findCID(b, c.getter, name)
				// Timed from the last look that saw no verified byte to the
				// end (the holder search and the connection set-up before it
				// are not the path's cost).
				// If the first look already finds it done, the time counts
				// from the request.
				t0, cpu0, gcpu0 := time.Now(), cpuSeconds(b, sn.Cmd.Process.Pid), cpuSeconds(b, c.getter.Cmd.Process.Pid)
				startDownload(b, c.getter, cid, name+".bin")
				var d transfer.DownloadStatus
				for {
					now, cpuNow, gcpuNow := time.Now(), cpuSeconds(b, sn.Cmd.Process.Pid), cpuSeconds(b, c.getter.Cmd.Process.Pid)
					for _, x := range downloads(b, c.getter) {
						if x.ContentID == cid {
							d = x
						}
					}
					if d.State == "failed" {
						b.Fatalf("download failed: %s", d.Error)
					}
					if d.Done == 0 {
						t0, cpu0, gcpu0 = now, cpuNow, gcpuNow
					}
					if d.State == "done" {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				secs += time.Since(t0).Seconds()
				cpu += cpuSeconds(b, sn.Cmd.Process.Pid) - cpu0
				gcpu += cpuSeconds(b, c.getter.Cmd.Process.Pid) - gcpu0
				moved += float64(size) / 1e6
				if fileHash(b, d.Path) != want {
					b.Fatal("downloaded file differs from the original")
				}
				if v := via(d); v != c.wantVia {
					b.Fatalf("download went via %q, want %s", v, c.wantVia)
				}
			}
			b.ReportMetric(moved/secs, "MB/s")
			b.ReportMetric(cpu/moved, "sn-cpu-s/MB")
			b.ReportMetric(gcpu/moved, "getter-cpu-s/MB")
		})
	}
}
