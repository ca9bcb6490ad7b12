package transfer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/zap"

	"github.com/strata-p2p/strata/proto"
)

// Benchmarks of the whole transfer path against plain copies of the same
// bytes. Every figure is wall-clock MB/s (b.SetBytes) and CPU seconds per
// GiB for both ends together (getrusage of this process, plus nginx and
// curl read from /proc and getrusage of children).

const (
	benchSize      = 1 << 30   // 1 GiB, as the issue names
	multiSize      = 512 << 20 // multi-source runs
	multiRate      = 50e6      // bytes/s cap of each multi-source holder (50 MB/s)
	copyBufferSize = 256 << 10
)

// cpuMeter measures CPU time of this process and reaped children, plus
// any extra process (nginx) by pid.
type cpuMeter struct {
	pids  []int
	start time.Duration
	total time.Duration
}

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(who, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU reads utime+stime of pid from /proc (clock ticks of 10 ms).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func (c *cpuMeter) now() time.Duration {
	t := rusage(syscall.RUSAGE_SELF) + rusage(syscall.RUSAGE_CHILDREN)
	for _, p := range c.pids {
		t += procCPU(p)
	}
	return t
}

func (c *cpuMeter) begin() { c.start = c.now() }
func (c *cpuMeter) end()   { c.total += c.now() - c.start }

// report adds cpu-s/GiB for n runs of size bytes.
func (c *cpuMeter) report(b *testing.B, n int, size int64) {
	if n > 0 {
		b.ReportMetric(c.total.Seconds()/(float64(n)*float64(size)/(1<<30)), "cpu-s/GiB")
	}
}

// mark opens ("start") or closes ("end") a timed window in an execution
// trace, for tools/tracestall; without -test.trace it does nothing.
func mark(what string) { trace.Log(context.Background(), "bench", what) }

// heapPeak samples the heap in use (the runtime's HeapInuse) every 10 ms
// and keeps the largest. It reads runtime/metrics, which does not stop the
// world as runtime.ReadMemStats does: the sampling must not slow the
// download it watches.
type heapPeak struct {
	stop chan struct{}
	done chan struct{}
	peak uint64
}

func startHeapPeak() *heapPeak {
	h := &heapPeak{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		ms := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
		for {
			metrics.Read(ms)
			h.peak = max(h.peak, ms[0].Value.Uint64()+ms[1].Value.Uint64())
			select {
			case <-t.C:
			case <-h.stop:
				return
			}
		}
	}()
	return h
}

func (h *heapPeak) end() uint64 {
	close(h.stop)
	<-h.done
	return h.peak
}

// strataRun downloads f with a fresh Manager from the given holders; it
// returns once the file has its final name.
func strataRun(b *testing.B, dial Dialer, hits []proto.Hit, f *benchFile, cpu *cpuMeter) {
	dir := b.TempDir()
	done := &completions{ch: make(chan completion, 1)}
	m, err := NewManager(ManagerConfig{Dir: filepath.Join(dir, "share"), StateDir: filepath.Join(dir, "state"),
		Dial: dial, OnComplete: done.fn, Logger: zap.NewNop(),
		Find: func(context.Context, proto.ContentID) ([]proto.Hit, error) { return hits, nil }})
	if err != nil {
		b.Fatal(err)
	}
	m.Start(context.Background())
	cpu.begin()
	b.StartTimer()
	mark("start")
	st, err := m.Get(f.cid, "bench.bin")
	if err != nil {
		b.Fatal(err)
	}
	var got completion
	select {
	case got = <-done.ch:
	case <-time.After(5 * time.Minute):
		s, _ := m.Status(st.ID)
		b.Fatalf("download did not finish: %+v", s)
	}
	b.StopTimer()
	mark("end")
	cpu.end()
	if s, _ := m.Status(st.ID); s.State != StateDone {
		b.Fatalf("download ended %s: %s", s.State, s.Error)
	}
	m.Close()
	if fi, err := os.Stat(got.path); err != nil || fi.Size() != f.size {
		b.Fatalf("downloaded file: %v", err)
	}
	_ = os.RemoveAll(dir)
}

// BenchmarkTransfer1GiB downloads 1 GiB from one holder over QUIC on
// loopback through the whole Strata path (piece list, ranges, verification,
// disk writes, fsync, rename), beside plain copies of the same file: quic-go
// with its default config, crypto/tls over TCP, and nginx over HTTPS to curl.
func BenchmarkTransfer1GiB(b *testing.B) {
	b.Run("impl=strata", func(b *testing.B) {
		f := sourceFile(b, benchSize)
		log := zap.NewNop()
		holder := hostOn(b, quicTransport(b, log), f.lib())
		me := &holderHost{tr: quicTransport(b, log)}
		hits := []proto.Hit{f.hit(holder, "bench.bin")}
		var cpu cpuMeter
		b.SetBytes(benchSize)
		b.ResetTimer()
		b.StopTimer()
		runtime.GC() // the peak is the download's, not what setting up left
		heap := startHeapPeak()
		n := 0
		for range b.N {
			strataRun(b, dialer(me.tr), hits, f, &cpu)
			n++
		}
		peak := heap.end()
		cpu.report(b, n, benchSize)
		b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
	})
	b.Run("impl=quic-go-raw", func(b *testing.B) {
		f := sourceFile(b, benchSize)
		addr := rawQUICServer(b, f)
		var cpu cpuMeter
		b.SetBytes(benchSize)
		for b.Loop() {
			rawQUICRun(b, addr, benchSize, &cpu)
		}
		cpu.report(b, b.N, benchSize)
	})
	b.Run("impl=tls-tcp", func(b *testing.B) {
		f := sourceFile(b, benchSize)
		cert := selfSigned(b)
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		defer wg.Wait()
		defer ln.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				if _, err := c.Read(make([]byte, 1)); err == nil {
					if err := sendFile(c, f); err != nil {
						b.Error(err)
					}
				}
				_ = c.Close()
			}
		}()
		var cpu cpuMeter
		b.SetBytes(benchSize)
		for b.Loop() {
			cpu.begin()
			c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				b.Fatal(err)
			}
			_, _ = c.Write([]byte{1})
			n, err := drain(c)
			if err != nil || n != benchSize {
				b.Fatalf("received %d bytes: %v", n, err)
			}
			_ = c.Close()
			cpu.end()
		}
		cpu.report(b, b.N, benchSize)
	})
	b.Run("impl=nginx-https", func(b *testing.B) {
		f := sourceFile(b, benchSize)
		srv := startNginx(b, filepath.Dir(f.path))
		curl, err := exec.LookPath("curl")
		if err != nil {
			b.Skip("curl not found; install it (apt-get install curl) or run tools/bench.d/transfer.sh, which does")
		}
		url := fmt.Sprintf("https://127.0.0.1:%d/%s", srv.port, filepath.Base(f.path))
		cpu := cpuMeter{pids: []int{srv.cmd.Process.Pid}}
		b.SetBytes(benchSize)
		for b.Loop() {
			cpu.begin()
			out, err := exec.Command(curl, "-sSk", "--fail", "--http1.1", "-r", fmt.Sprintf("0-%d", benchSize-1),
				"-o", "/dev/null", "-w", "%{http_code} %{size_download}", url).CombinedOutput()
			cpu.end()
			if err != nil || string(out) != fmt.Sprintf("206 %d", benchSize) {
				b.Fatalf("curl: %v: %s", err, out)
			}
		}
		cpu.report(b, b.N, benchSize)
	})
}

// TestBenchSources writes the benchmark source files into
// STRATA_BENCH_SOURCES before any timed run (tools/bench.d/transfer.sh runs
// it first), so no implementation's process also writes 1 GiB; without
// the variable there is nothing to prepare.
func TestBenchSources(t *testing.T) {
	if os.Getenv("STRATA_BENCH_SOURCES") == "" {
		t.Skip("STRATA_BENCH_SOURCES is not set: the benchmarks write their sources themselves")
	}
	for _, size := range []int64{benchSize, multiSize, wanSize} {
		if f := sourceFile(t, size); f.size != size || len(f.pieces) != proto.NumPieces(uint64(size)) {
			t.Fatalf("source of %d bytes: %d bytes, %d pieces", size, f.size, len(f.pieces))
		}
	}
}

// BenchmarkMultiSource downloads 512 MiB from four holders capped at
// 50 MB/s each, beside one such holder: the aggregate should scale.
func BenchmarkMultiSource(b *testing.B) {
	for _, tc := range []struct {
		name    string
		holders int
	}{{"impl=4-sources", 4}, {"impl=1-source", 1}} {
		b.Run(tc.name, func(b *testing.B) {
			f := sourceFile(b, multiSize)
			log := zap.NewNop()
			var hits []proto.Hit
			for range tc.holders {
				h := startHolder(b, quicTransport(b, log), NewUploader(UploaderConfig{MaxRate: multiRate, Logger: log}, f.lib()), nil)
				hits = append(hits, f.hit(h, "bench.bin"))
			}
			me := &holderHost{tr: quicTransport(b, log)}
			var cpu cpuMeter
			b.SetBytes(multiSize)
			b.ResetTimer()
			b.StopTimer()
			for range b.N {
				strataRun(b, dialer(me.tr), hits, f, &cpu)
			}
			cpu.report(b, b.N, multiSize)
		})
	}
}

// rawQUICServer serves f to each quic-go connection's first stream, with
// quic-go's default config, and returns its address.
func rawQUICServer(b *testing.B, f *benchFile) string {
	cert := selfSigned(b)
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"bench"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var last *quic.Conn
	b.Cleanup(func() {
		_ = ln.Close() // leaves accepted connections open
		mu.Lock()
		if last != nil {
			_ = last.CloseWithError(0, "")
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			mu.Lock()
			last = c
			mu.Unlock()
			s, err := c.AcceptStream(context.Background())
			if err == nil {
				_, _ = s.Read(make([]byte, 1))
				err = sendFile(s, f)
				_ = s.Close()
			}
			if err != nil {
				b.Error(err)
			}
			<-c.Context().Done() // the client closes when it has read everything
		}
	}()
	return ln.Addr().String()
}

// rawQUICRun reads size bytes from the rawQUICServer at addr, timing it.
func rawQUICRun(b *testing.B, addr string, size int64, cpu *cpuMeter) {
	client := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"bench"}}
	cpu.begin()
	mark("start")
	c, err := quic.DialAddr(context.Background(), addr, client, nil)
	if err != nil {
		b.Fatal(err)
	}
	s, err := c.OpenStreamSync(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	_, _ = s.Write([]byte{1})
	n, err := drain(s)
	if err != nil || n != size {
		b.Fatalf("received %d bytes: %v", n, err)
	}
	_ = c.CloseWithError(0, "")
	mark("end")
	cpu.end()
}

// sendFile writes f to w in copyBufferSize blocks, as the Uploader does.
func sendFile(w io.Writer, f *benchFile) error {
	in, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer in.Close()
	buf := make([]byte, copyBufferSize)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// drain reads r to EOF and counts the bytes.
func drain(r io.Reader) (int64, error) {
	buf := make([]byte, copyBufferSize)
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// selfSigned makes an ECDSA P-256 certificate for 127.0.0.1.
func selfSigned(b *testing.B) tls.Certificate {
	certPEM, keyPEM := selfSignedPEM(b)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		b.Fatal(err)
	}
	return cert
}

func selfSignedPEM(b *testing.B) ([]byte, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

type nginxServer struct {
	cmd  *exec.Cmd
	port int
}

// startNginx runs nginx in the foreground, one process, serving root over
// HTTPS on a free loopback port, or skips the benchmark saying why.
func startNginx(b *testing.B, root string) *nginxServer {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			b.Skip("nginx not found; install it (apt-get install nginx) or run tools/bench.d/transfer.sh, which does")
		}
		bin = "/usr/sbin/nginx"
	}
	dir := b.TempDir()
	certPEM, keyPEM := selfSignedPEM(b)
	for name, data := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	conf := fmt.Sprintf(`%s
daemon off;
master_process off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  default_type application/octet-stream;
  client_body_temp_path %[2]s/body;
  proxy_temp_path %[2]s/proxy;
  fastcgi_temp_path %[2]s/fastcgi;
  uwsgi_temp_path %[2]s/uwsgi;
  scgi_temp_path %[2]s/scgi;
  server {
    listen 127.0.0.1:%[3]d ssl;
    ssl_certificate %[2]s/cert.pem;
    ssl_certificate_key %[2]s/key.pem;
    ssl_protocols TLSv1.3;
    root %[4]s;
  }
}
`, user, dir, port, root)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Skipf("nginx would not start: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return &nginxServer{cmd: cmd, port: port}
		}
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			b.Skipf("nginx exited at start (%v): %s %s", err, stderr.String(), log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Skipf("nginx did not listen on port %d within 5s: %s", port, stderr.String())
		}
	}
}
