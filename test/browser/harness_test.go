// Package browser tests the web consoles in headless Chromium: real strata
// processes on loopback (every address port 0, read back from the ready
// line), pages driven with chromedp. Screenshots are saved as artifacts in
// $STRATA_ARTIFACTS, or else <temp dir>/strata-browser-artifacts.
//
// Chromium is required: without it the tests fail and say how to install
// it, unless STRATA_SKIP_BROWSER=1.
package browser

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

	"github.com/chromedp/chromedp"

	"github.com/strata-p2p/strata/node"
)

var binary string

func TestMain(m *testing.M) {
	if os.Getenv("STRATA_SKIP_BROWSER") == "1" {
		// The tests skip themselves; don't build for nothing.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "strata-browser-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "strata")
	build := exec.Command("go", "build", "-race", "-o", binary, "github.com/strata-p2p/strata/cmd/strata")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building strata:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ---- processes ----------------------------------------------------------

// proc is a running strata process.
type proc struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	ready node.Ready
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

// start runs `strata args...` and waits for its ready line.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary, args...)
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

func (p *proc) url() string { return "http://" + p.ready.API + "/" }

func (p *proc) getJSON(path string, v any) {
	p.t.Helper()
	resp, err := http.Get("http://" + p.ready.API + path)
	if err != nil {
		p.t.Fatalf("%s %s: %v", p.name, path, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		p.t.Fatalf("%s %s: %v", p.name, path, err)
	}
}

// requireConsole fails the test at once if p's API does not serve a page
// at / (the console handler is not mounted).
func (p *proc) requireConsole(mount string) {
	p.t.Helper()
	resp, err := http.Get(p.url())
	if err != nil {
		p.t.Fatalf("%s: GET /: %v", p.name, err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/html") {
		p.t.Fatalf("%s serves no console at %s (%s, %s): mount %s on its API", p.name, p.url(), resp.Status, ct, mount)
	}
}

// eventually polls cond every 50 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func bootstrapArgs(t *testing.T) []string {
	return []string{"bootstrap", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--state-dir", t.TempDir(), "--log-format", "json"}
}

func nodeArgs(t *testing.T, bs string, extra ...string) []string {
	args := []string{"node", "--bootstrap", bs, "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0",
		"--state-dir", t.TempDir(), "--downloads", t.TempDir(), "--rescan", "200ms", "--heartbeat", "250ms",
		"--log-format", "json"}
	return append(args, extra...)
}

// ---- browser ------------------------------------------------------------

// browser is one headless Chromium; each test opens tabs in it.
type browser struct {
	ctx       context.Context
	artifacts string
}

// newBrowser starts Chromium, or fails saying how to install it.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	if os.Getenv("STRATA_SKIP_BROWSER") == "1" {
		t.Skip("STRATA_SKIP_BROWSER=1")
	}
	exe, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("browser tests need Chromium and found none on PATH (%v): install it with "+
			"`apt-get install chromium`, or set STRATA_SKIP_BROWSER=1 to skip them", err)
	}
	dir := os.Getenv("STRATA_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "strata-browser-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts folder: %v", err)
	}
	t.Logf("screenshots go to %s", dir)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.WindowSize(1280, 1000),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc() // waits for the browser to exit
	})
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	return &browser{ctx: bctx, artifacts: dir}
}

// tab is one page. Uncaught exceptions, console errors and browser log
// errors (failed loads, CSP violations) fail the test.
type tab struct {
	t   *testing.T
	ctx context.Context
	b   *browser
}

// open opens url in a new tab of b, for the life of t.
func (b *browser) open(t *testing.T, url string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	tb := &tab{t: t, ctx: ctx, b: b}
	var (
		mu   sync.Mutex
		errs []string
		wg   sync.WaitGroup
	)
	// Console starts the tab; its messages are read until the tab closes.
	messages := chromedp.Console(ctx)
	wg.Go(func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				errs = append(errs, m.String()+" "+m.URL)
				mu.Unlock()
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		for _, e := range errs {
			t.Errorf("page %s: %s", url, e)
		}
	})
	tb.run("open "+url, chromedp.Navigate(url))
	return tb
}

// run runs actions with a deadline of 30 s, failing the test on error.
func (tb *tab) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.fail(what, err)
	}
}

func (tb *tab) fail(what string, err error) {
	tb.t.Helper()
	tb.screenshot("failed-" + tb.t.Name())
	tb.t.Fatalf("%s: %v", what, err)
}

// waitJS waits until the JavaScript expression is true, up to d.
func (tb *tab) waitJS(d time.Duration, what, expr string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, d+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		tb.fail(what, err)
	}
}

// eval evaluates a JavaScript expression.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.fail("evaluate "+expr, err)
	}
	return v
}

// screenshot saves the whole page as <artifacts>/<name>.png, and checks
// that the page shows no JavaScript leftovers (null, undefined, NaN).
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	if !strings.HasPrefix(name, "failed-") {
		if bad := eval[string](tb, `(/\b(null|undefined|NaN)\b|\[object Object\]/.exec(document.body.innerText) || [""])[0]`); bad != "" {
			tb.t.Errorf("page %s shows %q", name, bad)
		}
	}
	ctx, cancel := context.WithTimeout(tb.ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
		return
	}
	name = strings.NewReplacer("/", "-", " ", "_").Replace(name)
	path := filepath.Join(tb.b.artifacts, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
		return
	}
	tb.t.Logf("screenshot: %s", path)
}
