package console

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, target string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPagesAndAssets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		h      http.Handler
		script string
	}{
		{"node", NodeHandler(), "/static/node.js"},
		{"bootstrap", BootstrapHandler(), "/static/map.js"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, tc.h, "GET", "/")
			if r.StatusCode != 200 {
				t.Fatalf("GET /: %s", r.Status)
			}
			if ct := r.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("GET / Content-Type %q", ct)
			}
			csp := r.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe") {
				t.Errorf("GET / Content-Security-Policy %q: want default-src 'self' and nothing unsafe", csp)
			}
			if r.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no X-Content-Type-Options: nosniff")
			}
			page := body(t, r)
			if !strings.Contains(page, `src="`+tc.script+`"`) {
				t.Errorf("page does not load %s", tc.script)
			}
			// Every asset the page names is served with its type.
			for _, m := range regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`).FindAllStringSubmatch(page, -1) {
				r := get(t, tc.h, "GET", m[1])
				if r.StatusCode != 200 {
					t.Errorf("GET %s: %s", m[1], r.Status)
				}
				if want := contentTypes[path.Ext(m[1])]; r.Header.Get("Content-Type") != want {
					t.Errorf("GET %s Content-Type %q, want %q", m[1], r.Header.Get("Content-Type"), want)
				}
			}
		})
	}
}

// The CSP forbids inline code; check the files don't rely on it, and that
// scripts never turn network text into HTML.
func TestNoInlineCode(t *testing.T) {
	inlineScript := regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`)
	handlerAttr := regexp.MustCompile(`\son[a-z]+\s*=`)
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		s := string(b)
		switch path.Ext(p) {
		case ".html":
			if inlineScript.MatchString(s) {
				t.Errorf("%s: inline <script>; the CSP blocks it, move it to /static", p)
			}
			if strings.Contains(s, "<style") || strings.Contains(s, " style=") {
				t.Errorf("%s: inline style; the CSP blocks it, use console.css", p)
			}
			if handlerAttr.MatchString(s) {
				t.Errorf("%s: inline event handler attribute", p)
			}
		case ".js":
			for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function", "document.write"} {
				if strings.Contains(s, bad) {
					t.Errorf("%s uses %s: set text with textContent", p, bad)
				}
			}
			for _, bad := range []string{"http://", "https://"} {
				if strings.Contains(strings.ReplaceAll(s, `"http://www.w3.org/2000/svg"`, ""), bad) {
					t.Errorf("%s names an external URL", p)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	h := NodeHandler()
	for _, p := range []string{"/index.html", "/static/", "/static/nope.js", "/static/../node.html", "/static/node.html", "/static/x/y.js", "/v1/nothing"} {
		r := get(t, h, "GET", p)
		if r.StatusCode != 404 {
			t.Errorf("GET %s: %s, want 404", p, r.Status)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("GET %s: Content-Type %q, want JSON error", p, ct)
		}
		if b := body(t, r); !strings.Contains(b, `"error"`) {
			t.Errorf("GET %s: body %q, want {\"error\": ...}", p, b)
		}
	}
	r := get(t, h, "POST", "/")
	if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %s Allow %q", r.Status, r.Header.Get("Allow"))
	}
	r = get(t, h, "HEAD", "/static/console.css")
	if r.StatusCode != 200 || body(t, r) != "" || r.Header.Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("HEAD /static/console.css: %s %q", r.Status, r.Header.Get("Content-Type"))
	}
}

func TestRevalidation(t *testing.T) {
	h := BootstrapHandler()
	r := get(t, h, "GET", "/static/map.js")
	etag := r.Header.Get("ETag")
	if etag == "" || r.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET /static/map.js: ETag %q Cache-Control %q", etag, r.Header.Get("Cache-Control"))
	}
	r = get(t, h, "GET", "/static/map.js", "If-None-Match", etag)
	if r.StatusCode != http.StatusNotModified {
		t.Errorf("GET with If-None-Match %s: %s, want 304", etag, r.Status)
	}
}
