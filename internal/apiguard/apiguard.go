// Package apiguard protects a control API — a node's or a bootstrap
// server's HTTP API on its --api address — from other users of the network
// and from web pages in the user's own browser. Wrap applies these rules, in
// this order, to every request:
//
//  1. Host: when no token is required, the Host header must name the API
//     itself: localhost, a loopback IP, or the IP the API is bound to (any
//     port, so an SSH tunnel works). A page on a domain that an attacker
//     points at 127.0.0.1 (DNS rebinding) is refused with 403.
//  2. Origin: a request that carries an Origin header (browsers add it to
//     cross-origin requests and to same-origin POSTs) is refused with 403
//     unless the origin is the API's own (http:// or https:// and the Host
//     header). Access-Control-Allow-Origin is never sent, so no other site
//     can read an answer either.
//  3. Token: when the API is bound to an address that is not loopback, or a
//     token was configured, the request must carry
//     "Authorization: Bearer <token>", or it gets 401. GET and HEAD of the
//     Public paths (the console's page and its static files, which hold no
//     data) need no token: the page sends the token on its API calls.
//
// Methods, the per-path dispatch the APIs use, adds the last rules: a method
// the path does not serve gets 405 with an Allow header, and a request with
// a method other than GET or HEAD must say Content-Type: application/json,
// or it gets 415. An HTML form cannot send that type, so a form posted from
// another site is refused even by a browser that sends no Origin.
//
// Refusals are JSON, {"error": "..."}, and say what to do.
//
// A token that is not configured is generated once — 32 random bytes in hex
// — into <state-dir>/api-token (mode 0600) and reused on every start.
package apiguard

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"go.uber.org/zap"
)

// TokenFile is the name of the generated token's file in the state
// directory.
const TokenFile = "api-token"

// minTokenLen is the shortest token accepted from a flag or a file.
const minTokenLen = 16

// Config says where the API listens and which token it wants.
type Config struct {
	// Addr is the address the API's listener is bound to (its Addr(), so
	// port 0 is resolved). nil is taken as loopback with no known IP.
	Addr net.Addr
	// Token is the bearer token to require ("" for none). When it is empty
	// and Addr is not loopback, a token is read from (or generated into)
	// StateDir/api-token.
	Token string
	// TokenFlag names where Token came from in messages, e.g.
	// "--api-token (STRATA_API_TOKEN)". Default "the configured token".
	TokenFlag string
	// StateDir holds the generated token. It is required when Addr is not
	// loopback and Token is empty.
	StateDir string
	// Public lists path prefixes ("/", "/static/") that GET and HEAD reach
	// without a token. A prefix that ends in "/" other than "/" itself
	// matches everything below it; "/" matches only "/".
	Public []string
	// Logger receives one line saying how the API is protected; nil
	// discards it.
	Logger *zap.Logger
}

// Guard applies the rules of the package comment.
type Guard struct {
	cfg       Config
	boundIP   net.IP // nil when unknown or unspecified
	loopback  bool
	token     string
	tokenHint string // where the token is, for 401 messages
}

// New resolves the token (reading or generating the token file when one is
// needed) and logs how the API is protected.
func New(cfg Config) (*Guard, error) {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.TokenFlag == "" {
		cfg.TokenFlag = "the configured token"
	}
	g := &Guard{cfg: cfg, loopback: true}
	if a, ok := cfg.Addr.(*net.TCPAddr); ok {
		g.loopback = a.IP.IsLoopback()
		if !a.IP.IsUnspecified() {
			g.boundIP = a.IP
		}
	} else if cfg.Addr != nil {
		host, _, err := net.SplitHostPort(cfg.Addr.String())
		ip := net.ParseIP(host)
		g.loopback = err == nil && ip != nil && ip.IsLoopback()
		if ip != nil && !ip.IsUnspecified() {
			g.boundIP = ip
		}
	}
	where := "loopback"
	if cfg.Addr != nil {
		where = cfg.Addr.String()
	}
	switch {
	case cfg.Token != "":
		if err := checkToken(cfg.Token); err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.TokenFlag, err)
		}
		g.token, g.tokenHint = cfg.Token, "the token is the one given with "+cfg.TokenFlag
		log.Info("control API requires a bearer token", zap.String("api", where), zap.String("token", "from "+cfg.TokenFlag))
	case !g.loopback:
		if cfg.StateDir == "" {
			return nil, fmt.Errorf("control API on %s is not loopback, so it needs a token: set %s, or a state directory to keep a generated one in", where, cfg.TokenFlag)
		}
		tok, created, err := LoadOrCreateToken(cfg.StateDir)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(cfg.StateDir, TokenFile)
		g.token, g.tokenHint = tok, "the token is in "+path+" on the host running this API"
		if created {
			log.Info("control API is not on loopback: generated a bearer token (send it as `Authorization: Bearer <token>`; it is kept and reused)",
				zap.String("api", where), zap.String("token_file", path), zap.String("token", tok))
		} else {
			log.Info("control API is not on loopback: it requires the bearer token kept in the token file",
				zap.String("api", where), zap.String("token_file", path))
		}
	}
	return g, nil
}

// TokenRequired reports whether requests need the bearer token.
func (g *Guard) TokenRequired() bool { return g.token != "" }

// Wrap returns h behind the guard's rules.
func (g *Guard) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.token == "" && !g.hostAllowed(r.Host) {
			writeError(w, http.StatusForbidden, fmt.Sprintf(
				"Host %q is not this API's address; use http://127.0.0.1:PORT or http://localhost:PORT (names other than localhost are refused to stop DNS rebinding)", r.Host))
			return
		}
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
			writeError(w, http.StatusForbidden, fmt.Sprintf(
				"cross-origin request from %s refused: this API answers only its own console (%s) and programs that send no Origin header", o, "http://"+r.Host))
			return
		}
		if g.token != "" && !g.public(r) {
			if msg := g.checkAuth(r.Header.Get("Authorization")); msg != "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="strata"`)
				writeError(w, http.StatusUnauthorized, msg)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// Methods serves one path, choosing the handler by method. HEAD is answered
// by the GET handler; a method not in the map gets 405 with an Allow header;
// a method other than GET and HEAD needs Content-Type: application/json
// (415 otherwise), even with an empty body.
type Methods map[string]http.HandlerFunc

func (ms Methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, ok := ms[r.Method]
	if !ok && r.Method == http.MethodHead {
		h, ok = ms[http.MethodGet]
	}
	if !ok {
		allow := make([]string, 0, len(ms))
		for m := range ms {
			allow = append(allow, m)
		}
		slices.Sort(allow)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, " or ")))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf(
				"%s %s needs Content-Type: application/json (got %q), even with an empty body", r.Method, r.URL.Path, r.Header.Get("Content-Type")))
			return
		}
	}
	h(w, r)
}

func (g *Guard) checkAuth(header string) string {
	scheme, tok, ok := strings.Cut(header, " ")
	if header == "" || !ok || !strings.EqualFold(scheme, "Bearer") {
		return "this API needs a token: send `Authorization: Bearer <token>`; " + g.tokenHint +
			" (the strata CLI sends STRATA_API_TOKEN, or reads <state-dir>/" + TokenFile + ")"
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(g.token)) != 1 {
		return "wrong API token; " + g.tokenHint
	}
	return ""
}

func (g *Guard) public(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	for _, p := range g.cfg.Public {
		if r.URL.Path == p || (p != "/" && strings.HasSuffix(p, "/") && strings.HasPrefix(r.URL.Path, p)) {
			return true
		}
	}
	return false
}

// hostAllowed reports whether a Host header names this API: localhost, a
// loopback IP, or the IP the API is bound to. The port is not checked.
func (g *Guard) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || (g.boundIP != nil && ip.Equal(g.boundIP)))
}

func checkToken(tok string) error {
	if len(tok) < minTokenLen {
		return fmt.Errorf("token is %d characters; use at least %d (e.g. `openssl rand -hex 32`)", len(tok), minTokenLen)
	}
	for _, c := range tok {
		if c <= ' ' || c >= 0x7f {
			return errors.New("token has spaces or characters that are not printable ASCII; use letters, digits and punctuation")
		}
	}
	return nil
}

// LoadToken reads the token kept in stateDir. A missing file is "", nil.
func LoadToken(stateDir string) (string, error) {
	path := filepath.Join(stateDir, TokenFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("API token file %s: %w", path, err)
	}
	tok := strings.TrimSpace(string(b))
	if err := checkToken(tok); err != nil {
		return "", fmt.Errorf("API token file %s: %w; or delete the file to have a new token generated", path, err)
	}
	return tok, nil
}

// LoadOrCreateToken returns the token kept in stateDir/api-token, creating
// the file (mode 0600) with a new random token if there is none. A file that
// other users can read is refused.
func LoadOrCreateToken(stateDir string) (token string, created bool, err error) {
	path := filepath.Join(stateDir, TokenFile)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return "", false, fmt.Errorf("state directory %s: %w", stateDir, err)
	}
	for range 2 {
		st, err := os.Stat(path)
		if err == nil {
			if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
				return "", false, fmt.Errorf("API token file %s has mode %04o: other users can read it; run `chmod 600 %s`", path, st.Mode().Perm(), path)
			}
			tok, err := LoadToken(stateDir)
			return tok, false, err
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", false, fmt.Errorf("API token file %s: %w", path, err)
		}
		var raw [32]byte
		_, _ = rand.Read(raw[:])
		tok := hex.EncodeToString(raw[:])
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue // another process made it first: read theirs
		}
		if err != nil {
			return "", false, fmt.Errorf("cannot create the API token file %s: %w; check the state directory's permissions", path, err)
		}
		_, werr := f.WriteString(tok + "\n")
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			_ = os.Remove(path)
			return "", false, fmt.Errorf("writing the API token file %s: %w", path, err)
		}
		return tok, true, nil
	}
	return "", false, fmt.Errorf("API token file %s keeps appearing and vanishing; is another process changing it?", path)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
