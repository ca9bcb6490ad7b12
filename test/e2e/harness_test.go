// Package e2e runs real strata processes over real QUIC on loopback: every
// address is port 0, read back from the process's ready line.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-p2p/strata/internal/mediagen"
	"github.com/strata-p2p/strata/internal/netns"
	"github.com/strata-p2p/strata/node"
	"github.com/strata-p2p/strata/proto"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "strata")
	args := []string{"build", "-race", "-o", binary, "github.com/strata-p2p/strata/cmd/strata"}
	if os.Getenv("STRATA_E2E_RACE") == "0" { // benchmarks: figures without the race detector's cost
		args = append(args[:1], args[2:]...)
	}
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building strata:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running strata process.
type proc struct {
	t     testing.TB
	name  string
	cmd   *exec.Cmd
	ready node.Ready
	logs  *syncBuffer
	done  chan struct{}
	state string    // state dir
	ns    *netns.NS // the network namespace it runs in; nil: this one
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs `strata args...` and waits for its ready line.
func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	return startEnv(t, name, nil, args...)
}

// startEnv is start with extra environment variables ("KEY=value").
func startEnv(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	return startProc(t, &proc{t: t, name: name, logs: &syncBuffer{}, done: make(chan struct{})}, env, args...)
}

// startIn is start inside the network namespace ns.
func startIn(t testing.TB, ns *netns.NS, name string, args ...string) *proc {
	t.Helper()
	return startProc(t, &proc{t: t, name: name, logs: &syncBuffer{}, done: make(chan struct{}), ns: ns}, nil, args...)
}

func startProc(t testing.TB, p *proc, env []string, args ...string) *proc {
	t.Helper()
	name := p.name
	for i, a := range args {
		if a == "--state-dir" && i+1 < len(args) {
			p.state = args[i+1]
		}
	}
	p.cmd = exec.Command(binary, args...)
	if p.ns != nil {
		p.cmd = p.ns.Command(context.Background(), binary, args...)
	}
	if len(env) > 0 {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stderr = p.logs
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readyc := make(chan node.Ready, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r node.Ready
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Event == "ready" {
				readyc <- r
			}
		}
	}()
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if strings.Contains(p.logs.String(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race", p.name)
		}
		if strings.Contains(p.logs.String(), "panic:") {
			t.Errorf("%s panicked", p.name)
		}
		if t.Failed() {
			t.Logf("---- logs of %s ----\n%s", p.name, p.logs.String())
		}
	})
	select {
	case p.ready = <-readyc:
	case <-p.done:
		t.Fatalf("%s exited before it was ready:\n%s", name, p.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s not ready after 60 s:\n%s", name, p.logs.String())
	}
	return p
}

// stop sends SIGTERM and waits (SIGKILL after 10 s).
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill sends SIGKILL, as a crash would.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// http is a client that reaches p's control API (inside p's namespace).
func (p *proc) http() *http.Client {
	if p.ns != nil {
		return p.ns.HTTPClient()
	}
	return http.DefaultClient
}

func (p *proc) status() node.Status {
	p.t.Helper()
	var st node.Status
	p.getJSON("/v1/status", &st)
	return st
}

func (p *proc) getJSON(path string, v any) {
	p.t.Helper()
	resp, err := p.http().Get("http://" + p.ready.API + path)
	if err != nil {
		p.t.Fatalf("%s %s: %v", p.name, path, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		p.t.Fatalf("%s %s: %v", p.name, path, err)
	}
}

// waitAttached waits until the leaf p is attached to a supernode.
func (p *proc) waitAttached() {
	p.t.Helper()
	eventually(p.t, 15*time.Second, p.name+" did not attach to a supernode", func() bool {
		return p.status().Attached != nil
	})
}

// search runs a search through p's API and returns the hits.
func (p *proc) search(q string, timeout time.Duration) []proto.Hit {
	p.t.Helper()
	u := "http://" + p.ready.API + "/v1/search?" + url.Values{"q": {q}, "timeout": {timeout.String()}}.Encode()
	resp, err := p.http().Get(u)
	if err != nil {
		p.t.Fatalf("search on %s: %v", p.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		p.t.Fatalf("search on %s: %s %s", p.name, resp.Status, b)
	}
	var hits []proto.Hit
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var ev node.SearchEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			p.t.Fatalf("search line %q: %v", sc.Text(), err)
		}
		if ev.Hit != nil {
			hits = append(hits, *ev.Hit)
		}
	}
	return hits
}

// cli runs a strata client command and returns stdout.
func cli(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return cliIn(t, nil, args...)
}

// cliIn is cli inside the network namespace ns (nil: this one).
func cliIn(t testing.TB, ns *netns.NS, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, binary, args...)
	if ns != nil {
		cmd = ns.Command(ctx, binary, args...)
	}
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%v: %s", err, errb.String())
	}
	return out.String(), nil
}

// eventually polls cond every 50 ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeMP3 writes a small valid MP3 with tags into dir.
func writeMP3(t testing.TB, dir, name, artist, title string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := mediagen.WriteMP3(f, mediagen.MP3Options{Duration: 2 * time.Second, Bitrate: 128, SampleRate: 44100,
		Artist: artist, Title: title, Album: "E2E"}); err != nil {
		t.Fatal(err)
	}
	return path
}

func bootstrapArgs(t testing.TB) []string {
	return []string{"bootstrap", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--state-dir", t.TempDir(), "--log-format", "json"}
}

func nodeArgs(t testing.TB, bs string, extra ...string) []string {
	args := []string{"node", "--bootstrap", bs, "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0",
		"--state-dir", t.TempDir(), "--downloads", t.TempDir(), "--rescan", "200ms", "--heartbeat", "250ms",
		"--log-format", "json"}
	return append(args, extra...)
}

func hasHolder(hits []proto.Hit, id proto.PeerID) *proto.Hit {
	for i := range hits {
		if hits[i].Holder.ID == id {
			return &hits[i]
		}
	}
	return nil
}
