package apiguard

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"
)

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })

type req struct {
	method, path, host, origin, auth, ctype string
}

func do(g *Guard, q req) (int, string) {
	if q.method == "" {
		q.method = http.MethodGet
	}
	r := httptest.NewRequest(q.method, "http://x"+q.path, nil)
	r.Host = q.host
	if q.origin != "" {
		r.Header.Set("Origin", q.origin)
	}
	if q.auth != "" {
		r.Header.Set("Authorization", q.auth)
	}
	if q.ctype != "" {
		r.Header.Set("Content-Type", q.ctype)
	}
	w := httptest.NewRecorder()
	g.Wrap(ok).ServeHTTP(w, r)
	var e struct{ Error string }
	if w.Code != http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
			return -1, "not a JSON error: " + w.Body.String()
		}
		if w.Header().Get("Access-Control-Allow-Origin") != "" {
			return -2, "sent Access-Control-Allow-Origin"
		}
	}
	return w.Code, e.Error
}

func tcp(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return a
}

func TestLoopbackRules(t *testing.T) {
	g, err := New(Config{Addr: tcp("127.0.0.1:7500"), StateDir: t.TempDir(), Public: []string{"/", "/static/"}, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if g.TokenRequired() {
		t.Fatal("loopback without a configured token requires one")
	}
	for _, tc := range []struct {
		name string
		q    req
		code int
		msg  string
	}{
		{"plain GET", req{path: "/v1/status", host: "127.0.0.1:7500"}, 200, ""},
		{"localhost, other port (a tunnel)", req{path: "/v1/status", host: "localhost:8080"}, 200, ""},
		{"IPv6 loopback", req{path: "/v1/status", host: "[::1]:7500"}, 200, ""},
		{"rebinding host", req{path: "/v1/status", host: "evil.example:7500"}, 403, "DNS rebinding"},
		{"LAN IP host", req{path: "/v1/status", host: "192.168.1.5:7500"}, 403, "Host"},
		{"foreign origin", req{path: "/v1/status", host: "127.0.0.1:7500", origin: "http://evil.example"}, 403, "cross-origin"},
		{"null origin", req{path: "/v1/status", host: "127.0.0.1:7500", origin: "null"}, 403, "cross-origin"},
		{"own origin", req{path: "/v1/status", host: "127.0.0.1:7500", origin: "http://127.0.0.1:7500"}, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := do(g, tc.q)
			if code != tc.code || !strings.Contains(msg, tc.msg) {
				t.Fatalf("got %d %q, want %d with %q", code, msg, tc.code, tc.msg)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(g.cfg.StateDir, TokenFile)); err == nil {
		t.Error("a loopback API generated a token file")
	}
}

func TestMethods(t *testing.T) {
	ms := Methods{http.MethodGet: ok, http.MethodPost: ok, http.MethodDelete: ok}
	for _, tc := range []struct {
		name, method, ctype string
		code                int
		msg                 string
	}{
		{"GET", "GET", "", 200, ""},
		{"HEAD is GET", "HEAD", "", 200, ""},
		{"wrong method", "PUT", "application/json", 405, "use DELETE or GET or POST"},
		{"form post", "POST", "application/x-www-form-urlencoded", 415, "application/json"},
		{"multipart post", "POST", "multipart/form-data; boundary=x", 415, "application/json"},
		{"text post", "POST", "text/plain", 415, "application/json"},
		{"delete without type", "DELETE", "", 415, "application/json"},
		{"json post", "POST", "application/json; charset=utf-8", 200, ""},
		{"json delete", "DELETE", "application/json", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/v1/downloads", nil)
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			w := httptest.NewRecorder()
			ms.ServeHTTP(w, r)
			var e struct{ Error string }
			_ = json.Unmarshal(w.Body.Bytes(), &e)
			if w.Code != tc.code || !strings.Contains(e.Error, tc.msg) {
				t.Fatalf("got %d %s, want %d with %q", w.Code, w.Body, tc.code, tc.msg)
			}
			if w.Code == 405 && w.Header().Get("Allow") != "DELETE, GET, POST" {
				t.Errorf("Allow: %q", w.Header().Get("Allow"))
			}
		})
	}
}

func TestNonLoopbackGeneratesAndReusesToken(t *testing.T) {
	dir := t.TempDir()
	g, err := New(Config{Addr: tcp("0.0.0.0:7500"), StateDir: dir, Public: []string{"/", "/static/"}, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, TokenFile)
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	tok, _ := LoadToken(dir)
	if len(tok) != 64 || g.token != tok {
		t.Fatalf("token %q (file %q): want 64 hex digits", g.token, tok)
	}
	g2, err := New(Config{Addr: tcp("0.0.0.0:7500"), StateDir: dir})
	if err != nil || g2.token != tok {
		t.Fatalf("restart: token %q, %v; want the same token", g2.token, err)
	}

	for _, tc := range []struct {
		name string
		q    req
		code int
		msg  string
	}{
		{"no token", req{path: "/v1/status", host: "10.0.0.5:7500"}, 401, path},
		{"metrics without token", req{path: "/metrics", host: "node1:7500"}, 401, "Bearer"},
		{"wrong token", req{path: "/v1/status", host: "10.0.0.5:7500", auth: "Bearer 0000000000000000"}, 401, "wrong"},
		{"basic auth", req{path: "/v1/status", host: "10.0.0.5:7500", auth: "Basic " + tok}, 401, "Bearer"},
		{"token, any host", req{path: "/v1/status", host: "node1:7500", auth: "Bearer " + tok}, 200, ""},
		{"scheme any case", req{path: "/v1/status", host: "node1:7500", auth: "bearer " + tok}, 200, ""},
		{"console page is public", req{path: "/", host: "node1:7500"}, 200, ""},
		{"console asset is public", req{path: "/static/app.js", host: "node1:7500"}, 200, ""},
		{"only GET is public", req{method: "POST", path: "/", host: "node1:7500", ctype: "application/json"}, 401, "token"},
		{"root is not a prefix", req{path: "/v1/shares", host: "node1:7500"}, 401, "token"},
		{"token but foreign origin", req{path: "/v1/status", host: "node1:7500", origin: "http://evil.example", auth: "Bearer " + tok}, 403, "cross-origin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := do(g, tc.q)
			if code != tc.code || !strings.Contains(msg, tc.msg) {
				t.Fatalf("got %d %q, want %d with %q", code, msg, tc.code, tc.msg)
			}
		})
	}
}

func TestConfiguredToken(t *testing.T) {
	if _, err := New(Config{Addr: tcp("127.0.0.1:1"), Token: "short", TokenFlag: "--api-token"}); err == nil || !strings.Contains(err.Error(), "--api-token") {
		t.Fatalf("short token: %v; want an error naming --api-token", err)
	}
	if _, err := New(Config{Addr: tcp("127.0.0.1:1"), Token: "has a space in it ok"}); err == nil {
		t.Fatal("token with spaces accepted")
	}
	dir := t.TempDir()
	g, err := New(Config{Addr: tcp("127.0.0.1:7500"), Token: "0123456789abcdef", TokenFlag: "--api-token", StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// A configured token is required even on loopback.
	if code, msg := do(g, req{path: "/v1/status", host: "127.0.0.1:7500"}); code != 401 || !strings.Contains(msg, "--api-token") {
		t.Fatalf("got %d %q; want 401 naming --api-token", code, msg)
	}
	if code, _ := do(g, req{path: "/v1/status", host: "127.0.0.1:7500", auth: "Bearer 0123456789abcdef"}); code != 200 {
		t.Fatalf("with the token: %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, TokenFile)); err == nil {
		t.Error("a configured token was written to the token file")
	}
}

func TestTokenFileChecks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, TokenFile)
	if err := os.WriteFile(path, []byte("0123456789abcdef0123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateToken(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable token file: %v; want an error saying chmod 600", err)
	}
	_ = os.Chmod(path, 0o600)
	if tok, created, err := LoadOrCreateToken(dir); err != nil || created || tok != "0123456789abcdef0123" {
		t.Fatalf("own token file: %q %v %v", tok, created, err)
	}
	_ = os.WriteFile(path, []byte("\n"), 0o600)
	if _, _, err := LoadOrCreateToken(dir); err == nil || !strings.Contains(err.Error(), "delete the file") {
		t.Fatalf("empty token file: %v; want an error saying to delete it", err)
	}
	if tok, err := LoadToken(t.TempDir()); tok != "" || err != nil {
		t.Fatalf("missing file: %q %v; want empty and no error", tok, err)
	}
	if _, err := New(Config{Addr: tcp("0.0.0.0:1"), TokenFlag: "--api-token"}); err == nil || !strings.Contains(err.Error(), "--api-token") {
		t.Fatalf("non-loopback without token or state dir: %v", err)
	}
}
