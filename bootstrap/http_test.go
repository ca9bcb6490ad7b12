package bootstrap

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/strata-p2p/strata/internal/apiguard"
	"github.com/strata-p2p/strata/internal/transport/memnet"
	"github.com/strata-p2p/strata/proto"
)

// apiServer serves h on ln and returns the base URL on 127.0.0.1 and a
// client.
func apiServer(t *testing.T, ln net.Listener, h http.Handler) (string, *http.Client) {
	t.Helper()
	hs := httptest.NewUnstartedServer(h)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return "http://127.0.0.1:" + port, hs.Client()
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// get makes one request; hdr is name, value pairs ("Host" sets the Host).
func get(t *testing.T, hc *http.Client, method, url string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("%s %s sent Access-Control-Allow-Origin", method, url)
	}
	return resp.StatusCode, resp.Header, b
}

func wantAPIError(t *testing.T, what string, code int, body []byte, wantCode int, words ...string) {
	t.Helper()
	var e apiError
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

func TestAPITopologyAndMetrics(t *testing.T) {
	ctx := testCtx(t)
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "", Config{})
	sn, snTr := memClient(t, nw, 1, proto.RoleSupernode)
	if _, err := sn.Register(ctx, []string{b.addr}, nil, proto.Load{Leaves: 3, Capacity: 10, IndexFiles: 40, Neighbours: 1}); err != nil {
		t.Fatal(err)
	}
	full, _ := memClient(t, nw, 2, proto.RoleSupernode)
	if _, err := full.Register(ctx, []string{b.addr}, nil, proto.Load{Leaves: 5, Capacity: 5, IndexFiles: 10}); err != nil {
		t.Fatal(err)
	}
	if err := sn.SendTopology(ctx, b.addr, &proto.Topology{Neighbours: []proto.PeerID{pid(2)}, Leaves: []proto.PeerID{pid(7)}}); err != nil {
		t.Fatal(err)
	}
	// A leaf may not register: refused, and counted as such.
	leaf, _ := memClient(t, nw, 3, proto.RoleLeaf)
	if _, err := leaf.Register(ctx, []string{b.addr}, nil, proto.Load{Capacity: 10}); err == nil {
		t.Fatal("a leaf's Register was accepted")
	}
	h, err := b.srv.APIHandler(APIConfig{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	base, hc := apiServer(t, listen(t, "127.0.0.1:0"), h)

	code, hdr, body := get(t, hc, "GET", base+"/v1/topology")
	var topo Topology
	if code != 200 || hdr.Get("Content-Type") != "application/json" || json.Unmarshal(body, &topo) != nil {
		t.Fatalf("GET /v1/topology: %d %s", code, body)
	}
	if len(topo.Supernodes) != 2 {
		t.Fatalf("topology has %d supernodes, want 2: %s", len(topo.Supernodes), body)
	}
	for _, n := range topo.Supernodes {
		if n.PeerID == snTr.LocalPeer() && (len(n.Neighbours) != 1 || len(n.Leaves) != 1 || n.Load.Leaves != 3) {
			t.Errorf("supernode on the map: %+v", n)
		}
	}
	if code, _, _ := get(t, hc, "HEAD", base+"/v1/topology"); code != 200 {
		t.Errorf("HEAD /v1/topology: %d", code)
	}

	code, hdr, body = get(t, hc, "GET", base+"/metrics")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %d %s", code, hdr.Get("Content-Type"))
	}
	for _, want := range []string{
		"strata_bootstrap_supernodes 2\n",
		"strata_bootstrap_supernodes_full 1\n",
		"strata_bootstrap_leaves 8\n",
		"strata_bootstrap_capacity 15\n",
		"strata_bootstrap_free_slots 7\n",
		"strata_bootstrap_index_files 50\n",
		"strata_bootstrap_leaves_per_supernode 4\n",
		`strata_bootstrap_requests_total{type="Register",outcome="ok"} 2` + "\n",
		`strata_bootstrap_requests_total{type="Topology",outcome="ok"} 1` + "\n",
		`strata_bootstrap_requests_total{type="Register",outcome="refused"} 1` + "\n",
		`strata_bootstrap_requests_total{type="JoinRequest",outcome="ok"} 0` + "\n",
		`strata_bootstrap_promotion_asks{ask="step-up"} 0` + "\n",
		`strata_bootstrap_supernode_events_total{event="registered"} 2` + "\n",
		`strata_bootstrap_supernode_events_total{event="expired"} 0` + "\n",
		`strata_bootstrap_info{peer_id="` + pid(1000).String() + `"`,
		"# TYPE strata_bootstrap_connections gauge\n",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	// A second scrape does not count the same registrations again.
	_, _, body = get(t, hc, "GET", base+"/metrics")
	if !strings.Contains(string(body), `strata_bootstrap_supernode_events_total{event="registered"} 2`+"\n") {
		t.Errorf("second scrape recounted events:\n%s", body)
	}

	for _, tc := range []struct {
		method, path string
		code         int
		words        []string
	}{
		{"POST", "/v1/topology", 405, []string{"POST", "GET"}},
		{"DELETE", "/metrics", 405, []string{"DELETE"}},
		{"GET", "/v1/nope", 404, []string{"/v1/nope", "/v1/topology"}},
	} {
		code, hdr, body := get(t, hc, tc.method, base+tc.path, "Content-Type", "application/json")
		wantAPIError(t, tc.method+" "+tc.path, code, body, tc.code, tc.words...)
		if code == 405 && hdr.Get("Allow") == "" {
			t.Errorf("405 without Allow")
		}
	}
}

func TestAPIBrowserRules(t *testing.T) {
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "", Config{})
	ln := listen(t, "127.0.0.1:0")
	h, err := b.srv.APIHandler(APIConfig{Addr: ln.Addr(), StateDir: t.TempDir(), Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	base, hc := apiServer(t, ln, h)
	if code, _, body := get(t, hc, "GET", base+"/v1/status"); code != 200 {
		t.Fatalf("loopback without a token: %d %s", code, body)
	}
	code, _, body := get(t, hc, "GET", base+"/v1/topology", "Origin", "http://evil.example")
	wantAPIError(t, "foreign Origin", code, body, 403, "cross-origin")
	if code, _, body := get(t, hc, "GET", base+"/v1/topology", "Origin", base); code != 200 {
		t.Fatalf("own Origin: %d %s", code, body)
	}
	code, _, body = get(t, hc, "GET", base+"/metrics", "Host", "rebind.example:7301")
	wantAPIError(t, "rebinding Host", code, body, 403, "DNS rebinding")
	code, _, body = get(t, hc, "POST", base+"/v1/status", "Content-Type", "text/plain")
	wantAPIError(t, "POST /v1/status", code, body, 405, "GET")
	code, hdr, _ := get(t, hc, "GET", base+"/")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / (the network map): %d %s", code, hdr.Get("Content-Type"))
	}
}

func TestAPITokenOffLoopback(t *testing.T) {
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "", Config{})
	state := t.TempDir()
	ln := listen(t, "0.0.0.0:0")
	h, err := b.srv.APIHandler(APIConfig{Addr: ln.Addr(), StateDir: state, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	base, hc := apiServer(t, ln, h)
	tokenFile := filepath.Join(state, apiguard.TokenFile)
	if fi, err := os.Stat(tokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v; want one with mode 0600", err)
	}
	tok, err := apiguard.LoadToken(state)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/status", "/v1/topology", "/metrics"} {
		code, hdr, body := get(t, hc, "GET", base+path)
		wantAPIError(t, path+" without a token", code, body, 401, "Bearer", tokenFile)
		if hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("401 without WWW-Authenticate")
		}
		if code, _, body := get(t, hc, "GET", base+path, "Authorization", "Bearer "+tok, "Host", "bootstrap1.lab:7301"); code != 200 {
			t.Fatalf("%s with the token: %d %s", path, code, body)
		}
	}
	// The network map's page and files are public: they hold no data.
	for _, path := range []string{"/", "/static/map.js"} {
		if code, hdr, _ := get(t, hc, "GET", base+path); code != 200 || hdr.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s without a token: %d; want the console", path, code)
		}
	}
	// Restarting on the same state directory keeps the token.
	h2, err := b.srv.APIHandler(APIConfig{Addr: ln.Addr(), StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/v1/status", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	h2.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("restart: the token is refused: %d %s", w.Code, w.Body)
	}
	// A configured token replaces the file's.
	h3, err := b.srv.APIHandler(APIConfig{Addr: ln.Addr(), Token: "a-configured-token-1234", StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	w = httptest.NewRecorder()
	h3.ServeHTTP(w, r)
	if w.Code != 401 {
		t.Fatalf("the file's token opened an API with a configured token: %d", w.Code)
	}
	if _, err := b.srv.APIHandler(APIConfig{Addr: ln.Addr(), Token: "short"}); err == nil || !strings.Contains(err.Error(), "--api-token") {
		t.Fatalf("short token: %v", err)
	}
}
