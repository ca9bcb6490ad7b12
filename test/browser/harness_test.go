// Package browser tests the web consoles in headless Chromium: real strata
// processes on loopback (every address port 0, read back from the ready
// line), pages driven with chromedp. Screenshots are saved as artifacts in
// $STRATA_ARTIFACTS, or else <temp dir>/strata-browser-artifacts.
//
// Chromium is required: without it the tests fail and say how to install
// it, unless STRATA_SKIP_BROWSER=1.
package browser

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/strata-p2p/strata/test/internal/proctest"
)

func TestMain(m *testing.M) {
	if os.Getenv("STRATA_SKIP_BROWSER") == "1" {
		// The tests skip themselves; don't build for nothing.
		os.Exit(m.Run())
	}
	proctest.Main(m, true)
}

// ---- processes ----------------------------------------------------------

// proc is a running strata process, with this package's helpers.
type proc struct{ *proctest.Proc }

// start runs `strata args...` and waits for its ready line.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return &proc{proctest.Start(t, name, args...)}
}

func (p *proc) url() string { return "http://" + p.Ready.API + "/" }

// requireConsole fails the test at once if p's API does not serve a page
// at / (the console handler is not mounted).
func (p *proc) requireConsole(mount string) {
	p.T.Helper()
	resp, err := http.Get(p.url())
	if err != nil {
		p.T.Fatalf("%s: GET /: %v", p.Name, err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/html") {
		p.T.Fatalf("%s serves no console at %s (%s, %s): mount %s on its API", p.Name, p.url(), resp.Status, ct, mount)
	}
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
