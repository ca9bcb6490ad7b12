package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/strata-p2p/strata/bootstrap"
	"github.com/strata-p2p/strata/internal/apiguard"
	"github.com/strata-p2p/strata/internal/identity"
	"github.com/strata-p2p/strata/internal/mediagen"
	"github.com/strata-p2p/strata/internal/transfer"
	"github.com/strata-p2p/strata/internal/transport/quicnet"
	"github.com/strata-p2p/strata/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startBootstrap runs a bootstrap server over QUIC on loopback.
func startBootstrap(t *testing.T) string {
	t.Helper()
	id, _, err := identity.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := bootstrap.DefaultConfig()
	cfg.Logger = zaptest.NewLogger(t).Named("bootstrap")
	cfg.Heartbeat = 100 * time.Millisecond
	cfg.Expiry = 2 * time.Second
	srv, err := bootstrap.New(cfg, id.PeerID())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := quicnet.Listen("127.0.0.1:0", id, quicnet.Config{Logger: cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), tr) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; err != nil {
			t.Errorf("bootstrap Serve: %v", err)
		}
		_ = tr.Close()
	})
	return tr.Addr().String()
}

// running is a node started in-process.
type running struct {
	n     *Node
	ready Ready
	api   string // base URL, http://127.0.0.1:PORT
	hc    *http.Client
	stop  func() // stops the node and waits for it (also run at cleanup)
}

// startNode runs a node on loopback; edit changes its config first.
func startNode(t *testing.T, name string, edit func(*Config)) *running {
	t.Helper()
	cfg := Config{StateDir: t.TempDir(), Listen: "127.0.0.1:0", API: "127.0.0.1:0", Downloads: t.TempDir(),
		Role: RoleLeaf, Rescan: time.Minute, Heartbeat: 100 * time.Millisecond, Logger: zaptest.NewLogger(t).Named(name)}
	if edit != nil {
		edit(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	readyc := make(chan Ready, 1)
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, func(r Ready) { readyc <- r }) }()
	r := &running{n: n, hc: &http.Client{Transport: &http.Transport{}}}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: Run: %v", name, err)
			}
			r.hc.CloseIdleConnections()
		})
	}
	t.Cleanup(r.stop)
	select {
	case r.ready = <-readyc:
	case err := <-done:
		done <- err
		t.Fatalf("%s: Run ended before ready: %v", name, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: not ready after 20s", name)
	}
	_, port, _ := net.SplitHostPort(r.ready.API)
	r.api = "http://127.0.0.1:" + port
	return r
}

// writeMP3 writes a small tagged MP3 into dir.
func writeMP3(t *testing.T, dir, name, artist, title string, seed uint64) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := mediagen.WriteMP3(f, mediagen.MP3Options{Duration: 2 * time.Second, Bitrate: 128, Artist: artist, Title: title,
		Album: "API", Noise: true, Seed: seed}); err != nil {
		t.Fatal(err)
	}
}

// call makes one request and returns the status and body.
func (r *running) call(t *testing.T, method, path, body string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, r.api+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if method != http.MethodGet && method != http.MethodHead {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("%s %s sent Access-Control-Allow-Origin", method, path)
	}
	return resp.StatusCode, resp.Header, b
}

// wantError checks a JSON error answer with the given code whose message
// contains each of words.
func wantError(t *testing.T, what string, code int, body []byte, wantCode int, words ...string) {
	t.Helper()
	var e struct{ Error string }
	if code != wantCode || json.Unmarshal(body, &e) != nil || e.Error == "" {
		t.Errorf("%s: got %d %s; want %d with a JSON error", what, code, body, wantCode)
		return
	}
	for _, w := range words {
		if !strings.Contains(e.Error, w) {
			t.Errorf("%s: error %q does not mention %q", what, e.Error, w)
		}
	}
}

// waitFor polls cond until it holds or 15 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// TestAPIOverANetwork runs a bootstrap server, a supernode sharing a file
// and a leaf, and drives every endpoint of the leaf's and the supernode's
// APIs: status, shares, a streamed search, a download to completion, and
// metrics.
func TestAPIOverANetwork(t *testing.T) {
	bs := startBootstrap(t)
	shared := t.TempDir()
	writeMP3(t, shared, "song.mp3", "Zephyr Quartet", "Marmalade Sky", 1)
	sn := startNode(t, "supernode", func(c *Config) {
		c.Role, c.Bootstraps, c.ShareDirs = RoleSupernode, []string{bs}, []string{shared}
	})
	leaf := startNode(t, "leaf", func(c *Config) { c.Bootstraps = []string{bs} })

	// status
	var st Status
	waitFor(t, "the leaf to attach", func() bool {
		code, _, body := leaf.call(t, "GET", "/v1/status", "")
		return code == 200 && json.Unmarshal(body, &st) == nil && st.Attached != nil
	})
	if st.Role != proto.RoleLeaf || st.PeerID != leaf.n.PeerID() || st.Attached.Supernode.ID != sn.n.PeerID() {
		t.Fatalf("leaf status: %+v", st)
	}
	code, hdr, body := sn.call(t, "GET", "/v1/status", "")
	if code != 200 || hdr.Get("Content-Type") != "application/json" || json.Unmarshal(body, &st) != nil ||
		st.Supernode == nil || len(st.Supernode.Leaves) != 1 {
		t.Fatalf("supernode status: %d %s", code, body)
	}
	if code, _, _ := sn.call(t, "HEAD", "/v1/status", ""); code != 200 {
		t.Errorf("HEAD /v1/status: %d", code)
	}

	// shares
	var files []proto.FileEntry
	code, _, body = sn.call(t, "GET", "/v1/shares", "")
	if code != 200 || json.Unmarshal(body, &files) != nil || len(files) != 1 || files[0].Name != "song.mp3" {
		t.Fatalf("supernode shares: %d %s", code, body)
	}
	cid := files[0].ContentID

	// search: NDJSON, hit lines then one done line
	code, hdr, body = leaf.call(t, "GET", "/v1/search?q=marmalade&max=5&timeout=2s", "")
	if code != 200 || hdr.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("search: %d %s %s", code, hdr.Get("Content-Type"), body)
	}
	var events []SearchEvent
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var ev SearchEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("search line %q: %v", sc.Text(), err)
		}
		events = append(events, ev)
	}
	if len(events) != 2 || events[0].Type != "hit" || events[0].Hit.Entry.ContentID != cid ||
		events[0].Hit.Holder.ID != sn.n.PeerID() || events[1].Type != "done" || events[1].Hits != 1 || events[1].Error != "" {
		t.Fatalf("search lines: %s", body)
	}
	// A search with no hits still ends with a done line.
	code, _, body = leaf.call(t, "GET", "/v1/search?q=nothing+matches+this&timeout=300ms", "")
	if code != 200 || !strings.Contains(string(body), `"hits":0}`) || strings.Contains(string(body), `"hit"`) {
		t.Fatalf("empty search: %d %s", code, body)
	}

	// downloads
	code, _, body = leaf.call(t, "GET", "/v1/downloads", "")
	if code != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("no downloads yet: %d %s", code, body)
	}
	var d transfer.DownloadStatus
	code, _, body = leaf.call(t, "POST", "/v1/downloads", `{"content_id":"`+cid.String()+`","name":"copy.mp3"}`)
	if code != http.StatusAccepted || json.Unmarshal(body, &d) != nil || d.ID != cid.String() {
		t.Fatalf("start download: %d %s", code, body)
	}
	waitFor(t, "the download to finish", func() bool {
		code, _, body := leaf.call(t, "GET", "/v1/downloads/"+d.ID, "")
		if code != 200 || json.Unmarshal(body, &d) != nil {
			t.Fatalf("download status: %d %s", code, body)
		}
		if d.State == transfer.StateFailed {
			t.Fatalf("download failed: %s", body)
		}
		return d.State == transfer.StateDone
	})
	if filepath.Base(d.Path) != "copy.mp3" {
		t.Errorf("downloaded to %s, want copy.mp3", d.Path)
	}
	code, _, body = leaf.call(t, "GET", "/v1/downloads", "")
	if code != 200 || !strings.Contains(string(body), cid.String()) {
		t.Fatalf("download list: %d %s", code, body)
	}
	code, _, body = leaf.call(t, "DELETE", "/v1/downloads/"+d.ID, "")
	wantError(t, "cancel a finished download", code, body, http.StatusConflict, "finished")

	// metrics: the leaf's own search and download, the supernode's query counters
	code, hdr, body = leaf.call(t, "GET", "/metrics", "")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("leaf metrics: %d %s", code, hdr.Get("Content-Type"))
	}
	for _, want := range []string{
		`strata_search_duration_seconds_count 2`,
		`strata_search_hits_bucket{le="1"} 2`,
		`strata_search_hits_count 2`,
		`strata_search_first_hit_seconds_count 1`,
		`strata_role{role="leaf"} 1`,
		`strata_connections{peer="supernode"} 1`,
		`strata_attachment_changes_total{change="attached"} 1`,
		`strata_downloads{state="done"} 1`,
		`strata_shared_files 1`,
		`strata_relayed_bytes_total 0`,
		`strata_uploaded_bytes_total 0`,
		`strata_node_info{peer_id="` + leaf.n.PeerID().String() + `"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("leaf metrics lack %q:\n%s", want, body)
		}
	}
	if v := metricValue(string(body), "strata_downloaded_bytes_total"); v < 1000 {
		t.Errorf("strata_downloaded_bytes_total = %v after a download", v)
	}

	code, _, body = sn.call(t, "GET", "/metrics", "")
	if code != 200 {
		t.Fatalf("supernode metrics: %d", code)
	}
	for _, want := range []string{
		`strata_role{role="supernode"} 1`,
		`strata_role_changes_total{to="supernode"} 1`,
		// the leaf's search with a hit and its download's cid: search (not the empty search)
		`strata_supernode_first_answer_seconds_count 2`,
		`strata_leaves 1`,
		`strata_connections{peer="leaf"} 1`,
		`strata_neighbours 0`,
		`strata_queries_forwarded_total 0`,
		`# TYPE strata_drops_total counter`,
		`# TYPE strata_search_duration_seconds histogram`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("supernode metrics lack %q:\n%s", want, body)
		}
	}
	// The supernode's file, and the leaf's copy once it is downloaded and shared.
	if v := metricValue(string(body), "strata_index_files"); v < 1 {
		t.Errorf("strata_index_files = %v", v)
	}
	// The leaf's two searches and the download's source lookup reached the supernode.
	if v := metricValue(string(body), `strata_queries_received_total{from="leaf"}`); v < 3 {
		t.Errorf(`strata_queries_received_total{from="leaf"} = %v, want >= 3`, v)
	}
	if v := metricValue(string(body), `strata_queries_answered_total`); v < 2 {
		t.Errorf(`strata_queries_answered_total = %v, want >= 2`, v)
	}
	if v := metricValue(string(body), `strata_uploaded_bytes_total`); v < 1000 {
		t.Errorf("supernode strata_uploaded_bytes_total = %v after serving a download", v)
	}
}

// metricValue returns the value of the sample whose name and labels are
// exactly series, or -1.
func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if err := json.Unmarshal([]byte(rest), &v); err == nil {
				return v
			}
		}
	}
	return -1
}

// TestAPIBadRequests checks that every malformed request gets a clear 4xx
// JSON error.
func TestAPIBadRequests(t *testing.T) {
	n := startNode(t, "supernode", func(c *Config) { c.Role = RoleSupernode })
	missing := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		words                    []string
	}{
		{"max zero", "GET", "/v1/search?q=x&max=0", "", 400, []string{"max", "positive"}},
		{"max not a number", "GET", "/v1/search?q=x&max=ten", "", 400, []string{"max", `"ten"`}},
		{"max too large", "GET", "/v1/search?q=x&max=5000", "", 400, []string{"max", "1000"}},
		{"timeout not a duration", "GET", "/v1/search?q=x&timeout=soon", "", 400, []string{"timeout", "3s"}},
		{"timeout too long", "GET", "/v1/search?q=x&timeout=2m", "", 400, []string{"timeout", "1m"}},
		{"timeout negative", "GET", "/v1/search?q=x&timeout=-1s", "", 400, []string{"timeout"}},
		{"no query", "GET", "/v1/search", "", 400, []string{"q", "missing"}},
		{"bad query", "GET", "/v1/search?q=cid:xyz", "", 400, []string{"content ID"}},
		{"bad content ID", "POST", "/v1/downloads", `{"content_id":"1234"}`, 400, []string{"content_id", "64 hex digits"}},
		{"not JSON", "POST", "/v1/downloads", `content_id=12`, 400, []string{"body", "JSON"}},
		{"unknown field", "POST", "/v1/downloads", `{"cid":"` + missing + `"}`, 400, []string{"unknown field", "content_id"}},
		{"empty body", "POST", "/v1/downloads", ``, 400, []string{"body"}},
		{"bad name", "POST", "/v1/downloads", `{"content_id":"` + missing + `","name":"../x.mp3"}`, 400, []string{"name"}},
		{"hidden name", "POST", "/v1/downloads", `{"content_id":"` + missing + `","name":".x.mp3"}`, 400, []string{"hidden"}},
		{"unknown download", "GET", "/v1/downloads/" + missing, "", 404, []string{"no download", missing}},
		{"cancel unknown download", "DELETE", "/v1/downloads/" + missing, "", 404, []string{"no download"}},
		{"malformed download ID", "GET", "/v1/downloads/nope", "", 400, []string{"download ID", "content ID"}},
		{"POST status", "POST", "/v1/status", "{}", 405, []string{"POST", "GET"}},
		{"DELETE search", "DELETE", "/v1/search", "", 405, []string{"DELETE"}},
		{"PUT downloads", "PUT", "/v1/downloads", "{}", 405, []string{"GET or POST"}},
		{"POST metrics", "POST", "/metrics", "{}", 405, []string{"GET"}},
		{"unknown endpoint", "GET", "/v1/peers-nope", "", 404, []string{"no such endpoint", "/v1/status"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := n.call(t, tc.method, tc.path, tc.body)
			wantError(t, tc.name, code, body, tc.code, tc.words...)
			if code == 405 && hdr.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
		})
	}
	// A form post is refused before it reaches the handler.
	code, _, body := n.call(t, "POST", "/v1/downloads", "content_id=1", "Content-Type", "application/x-www-form-urlencoded")
	wantError(t, "form post", code, body, http.StatusUnsupportedMediaType, "application/json")
	// Searching on a lone supernode works and finds nothing.
	code, _, body = n.call(t, "GET", "/v1/search?q=anything&timeout=100ms", "")
	if code != 200 || !strings.Contains(string(body), `"type":"done"`) {
		t.Fatalf("search on a lone supernode: %d %s", code, body)
	}
}

// TestAPIBrowserRules checks the cross-origin and DNS-rebinding rules on a
// loopback API, where no token is needed.
func TestAPIBrowserRules(t *testing.T) {
	n := startNode(t, "supernode", func(c *Config) { c.Role = RoleSupernode })
	host := strings.TrimPrefix(n.api, "http://")
	if code, _, body := n.call(t, "GET", "/v1/status", ""); code != 200 {
		t.Fatalf("loopback without a token: %d %s", code, body)
	}
	code, _, body := n.call(t, "GET", "/v1/status", "", "Origin", "http://evil.example")
	wantError(t, "foreign Origin", code, body, http.StatusForbidden, "cross-origin", "evil.example")
	code, _, body = n.call(t, "POST", "/v1/downloads", `{"content_id":"`+strings.Repeat("00", 32)+`"}`, "Origin", "http://evil.example")
	wantError(t, "foreign Origin on POST", code, body, http.StatusForbidden, "cross-origin")
	if code, _, body := n.call(t, "GET", "/v1/status", "", "Origin", "http://"+host); code != 200 {
		t.Fatalf("own Origin: %d %s", code, body)
	}
	code, _, body = n.call(t, "GET", "/v1/status", "", "Host", "rebind.example:80")
	wantError(t, "rebinding Host", code, body, http.StatusForbidden, "DNS rebinding")
	code, _, body = n.call(t, "GET", "/metrics", "", "Host", "rebind.example")
	wantError(t, "rebinding Host on /metrics", code, body, http.StatusForbidden, "Host")
	if code, _, body := n.call(t, "GET", "/v1/status", "", "Host", "localhost:1"); code != 200 {
		t.Fatalf("Host localhost: %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(n.n.cfg.StateDir, apiguard.TokenFile)); err == nil {
		t.Error("a loopback API generated a token file")
	}
	// The console is served at /, and its page may call the API (same origin).
	code, hdr, _ := n.call(t, "GET", "/", "")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", code, hdr.Get("Content-Type"))
	}
	code, _, body = n.call(t, "GET", "/static/nope.js", "")
	wantError(t, "missing console file", code, body, http.StatusNotFound, "")
	code, _, body = n.call(t, "POST", "/", "{}")
	wantError(t, "POST /", code, body, http.StatusMethodNotAllowed, "GET")
}

// TestAPITokenOffLoopback binds the API to every interface: a token is
// generated into the state directory, requests without it get 401, and a
// restart keeps the same token.
func TestAPITokenOffLoopback(t *testing.T) {
	state := t.TempDir()
	edit := func(c *Config) { c.Role, c.API, c.StateDir = RoleSupernode, "0.0.0.0:0", state }
	n := startNode(t, "supernode", edit)
	tokenFile := filepath.Join(state, apiguard.TokenFile)
	fi, err := os.Stat(tokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v (mode %v); want one with mode 0600", err, fi.Mode().Perm())
	}
	tok, err := apiguard.LoadToken(state)
	if err != nil || len(tok) != 64 {
		t.Fatalf("token %q, %v; want 64 hex digits", tok, err)
	}
	for _, path := range []string{"/v1/status", "/v1/shares", "/v1/search?q=x", "/v1/downloads", "/metrics"} {
		code, hdr, body := n.call(t, "GET", path, "")
		wantError(t, "GET "+path+" without a token", code, body, http.StatusUnauthorized, "Bearer", tokenFile)
		if hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("401 on %s without WWW-Authenticate", path)
		}
	}
	code, _, body := n.call(t, "GET", "/v1/status", "", "Authorization", "Bearer not-the-token-at-all")
	wantError(t, "wrong token", code, body, http.StatusUnauthorized, "wrong")
	code, _, body = n.call(t, "POST", "/v1/downloads", `{}`)
	wantError(t, "POST without a token", code, body, http.StatusUnauthorized, "token")
	for _, path := range []string{"/v1/status", "/metrics"} {
		if code, _, body := n.call(t, "GET", path, "", "Authorization", "Bearer "+tok); code != 200 {
			t.Fatalf("GET %s with the token: %d %s", path, code, body)
		}
	}
	// The console's page and files are public: they hold no data.
	for _, path := range []string{"/", "/static/common.js"} {
		if code, hdr, _ := n.call(t, "GET", path, ""); code != 200 || hdr.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s without a token: %d %s; want the console", path, code, hdr.Get("Content-Type"))
		}
	}
	code, _, body = n.call(t, "GET", "/index.html", "")
	wantError(t, "GET /index.html without a token", code, body, http.StatusUnauthorized, "token")
	// With the token the Host is not checked (the API is meant to be reached by name).
	if code, _, body := n.call(t, "GET", "/v1/status", "", "Authorization", "Bearer "+tok, "Host", "node1.lab:7500"); code != 200 {
		t.Fatalf("with the token, by name: %d %s", code, body)
	}

	// A second node on the same state directory reuses the token.
	n2 := startNode(t, "again", func(c *Config) { edit(c); c.Listen = "127.0.0.1:0" })
	if code, _, body := n2.call(t, "GET", "/v1/status", "", "Authorization", "Bearer "+tok); code != 200 {
		t.Fatalf("restart: the old token is refused: %d %s", code, body)
	}
}

// TestAPIConfiguredToken requires a token given in the config, even on
// loopback.
func TestAPIConfiguredToken(t *testing.T) {
	const tok = "correct-horse-battery-staple"
	n := startNode(t, "supernode", func(c *Config) { c.Role, c.APIToken = RoleSupernode, tok })
	code, _, body := n.call(t, "GET", "/v1/status", "")
	wantError(t, "no token", code, body, http.StatusUnauthorized, "--api-token")
	if code, _, body := n.call(t, "GET", "/v1/status", "", "Authorization", "Bearer "+tok); code != 200 {
		t.Fatalf("with the token: %d %s", code, body)
	}

	// A token too short to be safe stops the node before it serves anything.
	bad, err := New(Config{StateDir: t.TempDir(), Listen: "127.0.0.1:0", API: "127.0.0.1:0", Downloads: t.TempDir(),
		Role: RoleSupernode, APIToken: "short", Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.lib.Close()
	err = bad.Run(testCtx(t), func(Ready) { t.Error("ready with a bad token") })
	if err == nil || !strings.Contains(err.Error(), "--api-token") || !strings.Contains(err.Error(), "at least 16") {
		t.Fatalf("Run with a 5-character token: %v; want an error naming --api-token", err)
	}
}
