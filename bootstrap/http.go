package bootstrap

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/apiguard"
	"github.com/strata-p2p/strata/internal/console"
)

// APIConfig says how the HTTP API is exposed.
type APIConfig struct {
	// Addr is the address the API's listener is bound to (its Addr()). nil
	// means loopback.
	Addr net.Addr
	// Token is the bearer token to require. When it is empty and Addr is
	// not loopback, one is read from (or generated into)
	// StateDir/api-token; on loopback none is needed.
	Token    string
	StateDir string
	// Logger receives one line saying how the API is protected; nil uses
	// the server's logger.
	Logger *zap.Logger
}

// Handler is APIHandler for an API on loopback without a token.
func (s *Server) Handler() http.Handler {
	h, err := s.APIHandler(APIConfig{})
	if err != nil {
		// Unreachable: with no address and no token there is nothing to check.
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
		})
	}
	return h
}

// APIHandler serves the bootstrap server's HTTP API (docs/API.md):
//
//	GET /v1/status     Status as JSON
//	GET /v1/topology   the network map's data (Topology)
//	GET /metrics       Prometheus metrics
//	GET /, /static/    the network map (internal/console)
//
// behind the rules of internal/apiguard: a Host check and no cross-origin
// requests, and a bearer token when the API is not on loopback (or one is
// configured). Other methods get 405 and other paths 404, each with a JSON
// body {"error": "..."}. Each call makes its own metrics registry.
func (s *Server) APIHandler(cfg APIConfig) (http.Handler, error) {
	if cfg.Logger == nil {
		cfg.Logger = s.log
	}
	g, err := apiguard.New(apiguard.Config{Addr: cfg.Addr, Token: cfg.Token, TokenFlag: "--api-token (STRATA_API_TOKEN)",
		StateDir: cfg.StateDir, Public: []string{"/", "/static/"}, Logger: cfg.Logger.Named("api")})
	if err != nil {
		return nil, err
	}
	m := newServerMetrics(s)
	mux := http.NewServeMux()
	mux.Handle("/v1/status", apiguard.Methods{http.MethodGet: func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Status())
	}})
	mux.Handle("/v1/topology", apiguard.Methods{http.MethodGet: s.TopologyHandler()})
	mux.Handle("/metrics", apiguard.Methods{http.MethodGet: m.reg.Handler().ServeHTTP})
	mux.Handle("/{$}", console.BootstrapHandler())
	mux.Handle("/static/", console.BootstrapHandler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, apiError{fmt.Sprintf(
			"no such endpoint %s; the bootstrap API serves GET /v1/status, /v1/topology, /metrics and the network map at / (see docs/API.md)", r.URL.Path)})
	})
	return g.Wrap(mux), nil
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(apiError{"encode status: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
