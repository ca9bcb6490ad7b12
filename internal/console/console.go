// Package console is the web console that a node and a bootstrap server
// serve on their --api address: one HTML page each, with its scripts and
// style sheet, embedded in the binary. There is no build step and nothing is
// fetched from elsewhere: the pages are plain HTML, CSS and JavaScript
// modules, and they talk only to the JSON API beside them.
//
//   - NodeHandler serves the node console: this node's role and state, a
//     search box with streamed results and filters, downloads with progress,
//     shares and events. It uses GET /v1/status, /v1/search, /v1/shares,
//     /v1/downloads, POST /v1/downloads and DELETE /v1/downloads/{id}.
//   - BootstrapHandler serves the network map: supernodes, their leaves and
//     mesh links as a live SVG graph, load per supernode, registrations and
//     expiries as they happen, and the leaves-per-supernode ratio over time.
//     It polls GET /v1/topology, or GET /v1/status where that is missing.
//
// Both answer GET and HEAD for "/" (the page) and "/static/<file>" (its
// assets) and 404 for anything else, so they are mounted at the root of the
// API's mux, beside /v1/. Every answer carries a strict
// Content-Security-Policy: scripts, styles, images and connections only from
// the page's own origin, no inline script or style, no framing.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed assets
var assets embed.FS

// contentSecurityPolicy allows the page's own origin and nothing else.
// 'self' in default-src covers scripts (modules included), styles, images,
// and fetch(); inline <script>, style attributes and eval are refused.
const contentSecurityPolicy = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

// NodeHandler serves the node console.
func NodeHandler() http.Handler { return &handler{page: "node.html"} }

// BootstrapHandler serves the bootstrap server's network map.
func BootstrapHandler() http.Handler { return &handler{page: "map.html"} }

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// contentTypes maps the extensions found under assets/ to their types.
// Files with other extensions are not served.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// loadAssets reads every embedded file once.
var loadAssets = sync.OnceValues(func() (map[string]asset, error) {
	out := map[string]asset{}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			return nil
		}
		body, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		out[strings.TrimPrefix(p, "assets/")] = asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	return out, err
})

type handler struct {
	page string // under assets/
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path+"; the console answers GET")
		return
	}
	var name string
	switch p := r.URL.Path; {
	case p == "/":
		name = h.page
	case strings.HasPrefix(p, "/static/") && !strings.Contains(p[len("/static/"):], "/"):
		name = p[1:]
	}
	all, err := loadAssets()
	if err != nil {
		// The files are compiled in: this is a broken build (the tests read
		// every one of them).
		writeError(w, http.StatusInternalServerError, "console assets unreadable: "+err.Error())
		return
	}
	a, ok := all[name]
	if name == "" || !ok {
		writeError(w, http.StatusNotFound, "no such page "+r.URL.Path+"; the console is at / and the API under /v1/")
		return
	}
	hd.Set("Content-Type", a.ctype)
	hd.Set("ETag", a.etag)
	// Revalidate every time: the ETag changes with the binary, and a
	// 304 costs nothing on loopback.
	hd.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
