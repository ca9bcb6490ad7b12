// Package proctest runs real strata processes for end-to-end tests. Main
// builds the binary once for a test package; Start runs `strata ARGS` (every
// address port 0) and waits for the JSON ready line that reports the
// addresses it got. A process's stderr is kept: a test that fails prints it,
// and a process that reports a data race or panics fails its test.
package proctest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-p2p/strata/internal/netns"
	"github.com/strata-p2p/strata/node"
)

// binary is the strata binary Main built.
var binary string

// Main builds strata into a temporary folder (with the race detector when
// race is set), runs the tests of m, removes the folder and exits with the
// tests' code. Call it from TestMain.
func Main(m *testing.M, race bool) {
	dir, err := os.MkdirTemp("", "strata-proctest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "strata")
	args := []string{"build", "-race", "-o", binary, "github.com/strata-p2p/strata/cmd/strata"}
	if !race {
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

// Proc is a running strata process, stopped when its test ends.
type Proc struct {
	T     testing.TB
	Name  string
	Cmd   *exec.Cmd
	Ready node.Ready // its ready line: the addresses it listens on
	State string     // its --state-dir, if given
	NS    *netns.NS  // the network namespace it runs in; nil: this one
	logs  *syncBuffer
	done  chan struct{}
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

// Start runs `strata args...` and waits for its ready line.
func Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	return StartEnv(t, name, nil, args...)
}

// StartEnv is Start with extra environment variables ("KEY=value").
func StartEnv(t testing.TB, name string, env []string, args ...string) *Proc {
	t.Helper()
	return start(t, &Proc{T: t, Name: name, logs: &syncBuffer{}, done: make(chan struct{})}, env, args...)
}

// StartIn is Start inside the network namespace ns.
func StartIn(t testing.TB, ns *netns.NS, name string, args ...string) *Proc {
	t.Helper()
	return start(t, &Proc{T: t, Name: name, logs: &syncBuffer{}, done: make(chan struct{}), NS: ns}, nil, args...)
}

func start(t testing.TB, p *Proc, env []string, args ...string) *Proc {
	t.Helper()
	for i, a := range args {
		if a == "--state-dir" && i+1 < len(args) {
			p.State = args[i+1]
		}
	}
	p.Cmd = exec.Command(binary, args...)
	if p.NS != nil {
		p.Cmd = p.NS.Command(context.Background(), binary, args...)
	}
	if len(env) > 0 {
		p.Cmd.Env = append(os.Environ(), env...)
	}
	p.Cmd.Stderr = p.logs
	stdout, err := p.Cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Start(); err != nil {
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
	go func() { _ = p.Cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop()
		if strings.Contains(p.logs.String(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race", p.Name)
		}
		if strings.Contains(p.logs.String(), "panic:") {
			t.Errorf("%s panicked", p.Name)
		}
		if t.Failed() {
			t.Logf("---- logs of %s ----\n%s", p.Name, p.logs.String())
		}
	})
	select {
	case p.Ready = <-readyc:
	case <-p.done:
		t.Fatalf("%s exited before it was ready:\n%s", p.Name, p.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s not ready after 60 s:\n%s", p.Name, p.logs.String())
	}
	return p
}

// Logs returns what p has written to stderr so far.
func (p *Proc) Logs() string { return p.logs.String() }

// Stop sends SIGTERM and waits (SIGKILL after 10 s).
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// Kill sends SIGKILL, as a crash would.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// HTTP is a client that reaches p's control API (inside p's namespace).
func (p *Proc) HTTP() *http.Client {
	if p.NS != nil {
		return p.NS.HTTPClient()
	}
	return http.DefaultClient
}

// Status is p's /v1/status.
func (p *Proc) Status() node.Status {
	p.T.Helper()
	var st node.Status
	p.GetJSON("/v1/status", &st)
	return st
}

// GetJSON decodes the JSON answer to GET path on p's API into v, failing
// the test on error.
func (p *Proc) GetJSON(path string, v any) {
	p.T.Helper()
	resp, err := p.HTTP().Get("http://" + p.Ready.API + path)
	if err != nil {
		p.T.Fatalf("%s %s: %v", p.Name, path, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		p.T.Fatalf("%s %s: %v", p.Name, path, err)
	}
}

// WaitAttached waits until the leaf p is attached to a supernode.
func (p *Proc) WaitAttached() {
	p.T.Helper()
	Eventually(p.T, 15*time.Second, p.Name+" did not attach to a supernode", func() bool {
		return p.Status().Attached != nil
	})
}

// CLI runs a strata client command and returns stdout.
func CLI(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return CLIIn(t, nil, args...)
}

// CLIIn is CLI inside the network namespace ns (nil: this one).
func CLIIn(t testing.TB, ns *netns.NS, args ...string) (string, error) {
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

// Eventually polls cond every 50 ms until it holds or d passes, and returns
// how long it took.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
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

// BootstrapArgs are the arguments of a bootstrap server on loopback, port 0,
// with a fresh state folder.
func BootstrapArgs(t testing.TB) []string {
	return []string{"bootstrap", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--state-dir", t.TempDir(), "--log-format", "json"}
}

// NodeArgs are the arguments of a node on loopback, port 0, that joins
// through the bootstrap server bs, with fresh state and download folders,
// fast rescans and heartbeats, and then extra.
func NodeArgs(t testing.TB, bs string, extra ...string) []string {
	args := []string{"node", "--bootstrap", bs, "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0",
		"--state-dir", t.TempDir(), "--downloads", t.TempDir(), "--rescan", "200ms", "--heartbeat", "250ms",
		"--log-format", "json"}
	return append(args, extra...)
}
