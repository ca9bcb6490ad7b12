package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/strata-p2p/strata/internal/apiguard"
	"github.com/strata-p2p/strata/internal/console"
	"github.com/strata-p2p/strata/internal/shares"
	"github.com/strata-p2p/strata/internal/transfer"
	"github.com/strata-p2p/strata/proto"
	"github.com/strata-p2p/strata/supernode"
)

// Status is what `strata status` shows for a node.
type Status struct {
	PeerID     proto.PeerID    `json:"peer_id"`
	Role       proto.Role      `json:"role"`
	RolePolicy string          `json:"role_policy"`
	Listen     []string        `json:"listen"`
	API        string          `json:"api"`
	UptimeS    float64         `json:"uptime_s"`
	Shares     shares.Stats    `json:"shares"`
	Attached   *AttachedStatus `json:"attached,omitempty"` // the supernode searches go to first
	// Attachments lists every supernode a leaf is attached to, healthiest
	// (where searches go first) first; Wanted is how many it keeps.
	Attachments []AttachedStatus `json:"attachments"`
	Wanted      int              `json:"supernodes_wanted"`
	HostCache   int              `json:"host_cache"` // supernodes in the persisted host cache
	// SearchRetries counts searches that failed on one supernode before
	// any hit and were sent again on another.
	SearchRetries uint64                `json:"search_retries"`
	Uploads       transfer.UploadStatus `json:"uploads"`
	Supernode     *SupernodeStatus      `json:"supernode,omitempty"`
	// Promotion is the promotion engine: measurements, demand, decisions.
	Promotion *PromotionStatus `json:"promotion,omitempty"`
	// Reach is the node's reachability and how it reached its sources.
	Reach  ReachStatus `json:"reach"`
	Events []Event     `json:"events"`
}

// AttachedStatus is one of a leaf's supernodes.
type AttachedStatus struct {
	Supernode proto.PeerInfo `json:"supernode"`
	SinceS    float64        `json:"since_s"`
	// RTTMS is the smoothed round trip of pings on the attach stream.
	RTTMS float64 `json:"rtt_ms"`
	// Responsive is false while a ping has gone unanswered for a second.
	Responsive bool `json:"responsive"`
	// SearchFailures counts searches through it that failed since the last
	// one that worked.
	SearchFailures int `json:"search_failures"`
}

// SupernodeStatus is the supernode role's state.
type SupernodeStatus struct {
	Leaves     []supernode.LeafStatus `json:"leaves"`
	Neighbours []proto.PeerInfo       `json:"neighbours"`
	IndexFiles int                    `json:"index_files"`
	IndexBytes int                    `json:"index_bytes"`
	Routes     int                    `json:"routes"`
	Capacity   int                    `json:"capacity"`
	Stats      supernode.Stats        `json:"stats"`
	QueueDrops uint64                 `json:"queue_drops"`
	Reach      supernode.ReachStats   `json:"reach"` // push, punch and relay for its leaves
}

// Status returns the node's current state.
func (n *Node) Status() Status {
	n.mu.Lock()
	st := Status{PeerID: n.PeerID(), Role: n.role, RolePolicy: n.cfg.Role, UptimeS: time.Since(n.start).Seconds(),
		Events: append([]Event(nil), n.events...), Listen: n.listenAddrsLocked(), Wanted: n.cfg.Supernodes,
		Attachments: []AttachedStatus{}}
	sn := n.sn
	n.mu.Unlock()
	st.HostCache, st.SearchRetries = n.hosts.Len(), n.searchRetries.Load()
	if n.api != nil {
		st.API = n.api.Addr().String()
	}
	st.Shares = n.lib.Stats()
	st.Uploads = n.up.Status()
	st.Promotion = n.promotionStatus()
	now := time.Now()
	for _, a := range n.attachments() {
		st.Attachments = append(st.Attachments, a.status(now))
	}
	if len(st.Attachments) > 0 {
		st.Attached = &st.Attachments[0]
	}
	if sn != nil {
		s := &SupernodeStatus{QueueDrops: sn.QueueDrops()}
		sn.With(func(c *supernode.Core) {
			s.Leaves, s.Neighbours = c.Leaves(), c.Neighbours()
			s.IndexFiles, s.IndexBytes, s.Routes = c.IndexFiles(), c.IndexBytes(), c.Routes()
			s.Capacity, s.Stats = c.Config().MaxLeaves, c.Stats()
		})
		s.Reach = sn.ReachStats()
		st.Supernode = s
	}
	st.Reach = n.reachStatus()
	return st
}

// SearchEvent is one line of the streamed search answer: a hit, or the
// final summary.
type SearchEvent struct {
	Type      string     `json:"type"` // "hit" or "done"
	Hit       *proto.Hit `json:"hit,omitempty"`
	Hits      int        `json:"hits,omitempty"`
	ElapsedMS float64    `json:"elapsed_ms,omitempty"`
	Error     string     `json:"error,omitempty"`
}

// MarshalJSON writes "hits" on every done line, zero included.
func (e SearchEvent) MarshalJSON() ([]byte, error) {
	type plain SearchEvent
	if e.Type != "done" {
		return json.Marshal(plain(e))
	}
	return json.Marshal(struct {
		plain
		Hits int `json:"hits"`
	}{plain(e), e.Hits})
}

// apiHandler builds the control API: the JSON endpoints under /v1/,
// /metrics and the console, behind the rules of internal/apiguard (Host
// check, no cross-origin requests, a bearer token when the API is not on
// loopback, JSON-only writes). docs/API.md describes every endpoint. It is
// called once n.api is listening.
func (n *Node) apiHandler() (http.Handler, error) {
	var addr net.Addr
	if n.api != nil {
		addr = n.api.Addr()
	}
	g, err := apiguard.New(apiguard.Config{Addr: addr, Token: n.cfg.APIToken, TokenFlag: "--api-token (STRATA_API_TOKEN)",
		StateDir: n.cfg.StateDir, Public: []string{"/", "/static/"}, Logger: n.log.Named("api")})
	if err != nil {
		return nil, err
	}
	a := &controlAPI{n: n, m: newNodeMetrics(n)}
	mux := http.NewServeMux()
	mux.Handle("/v1/status", apiguard.Methods{http.MethodGet: a.status})
	mux.Handle("/v1/shares", apiguard.Methods{http.MethodGet: a.shares})
	mux.Handle("/v1/search", apiguard.Methods{http.MethodGet: a.search})
	mux.Handle("/v1/downloads", apiguard.Methods{http.MethodGet: a.listDownloads, http.MethodPost: a.startDownload})
	mux.Handle("/v1/downloads/{id}", apiguard.Methods{http.MethodGet: a.download, http.MethodDelete: a.cancelDownload})
	mux.Handle("/metrics", apiguard.Methods{http.MethodGet: a.m.reg.Handler().ServeHTTP})
	mux.Handle("/{$}", console.NodeHandler())
	mux.Handle("/static/", console.NodeHandler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint "+r.URL.Path+
			"; the node API serves /v1/status, /v1/search, /v1/shares, /v1/downloads, /metrics and the console at / (see docs/API.md)")
	})
	return g.Wrap(mux), nil
}

// controlAPI answers the node's control API.
type controlAPI struct {
	n *Node
	m *nodeMetrics
}

func (a *controlAPI) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.Status())
}

func (a *controlAPI) shares(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.lib.Files())
}

func (a *controlAPI) listDownloads(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.dl.List())
}

// downloadID reads the {id} of /v1/downloads/{id}: a content ID in hex.
func downloadID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if _, err := proto.ParseContentID(id); err != nil {
		writeError(w, http.StatusBadRequest, "download ID: "+err.Error()+"; a download's ID is its content ID (see GET /v1/downloads)")
		return "", false
	}
	return strings.ToLower(id), true
}

func (a *controlAPI) download(w http.ResponseWriter, r *http.Request) {
	id, ok := downloadID(w, r)
	if !ok {
		return
	}
	d, ok := a.n.dl.Status(id)
	if !ok {
		writeError(w, http.StatusNotFound, "no download with ID "+id+"; see `strata downloads` or GET /v1/downloads")
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (a *controlAPI) cancelDownload(w http.ResponseWriter, r *http.Request) {
	id, ok := downloadID(w, r)
	if !ok {
		return
	}
	d, ok := a.n.dl.Status(id)
	if !ok {
		writeError(w, http.StatusNotFound, "no download with ID "+id+"; see `strata downloads` or GET /v1/downloads")
		return
	}
	if d.State == transfer.StateDone {
		writeError(w, http.StatusConflict, "download "+id+" already finished ("+d.Path+"); delete the file to remove it")
		return
	}
	if err := a.n.dl.Cancel(id); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"cancelled": id})
}

// maxSearchResults caps the max parameter of /v1/search.
const maxSearchResults = 1000

// search streams hits as JSON lines (application/x-ndjson), one per hit as
// it arrives, then a "done" line.
func (a *controlAPI) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("q")
	if strings.TrimSpace(q) == "" {
		writeError(w, http.StatusBadRequest, "q: missing; give a search such as ?q=beatles+bitrate>=128 or ?q=cid:<64 hex digits>")
		return
	}
	max, err := intParam(r, "max", 100)
	if err == nil && max > maxSearchResults {
		err = fmt.Errorf("max: %d is more than %d; ask for fewer hits", max, maxSearchResults)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	timeout := 3 * time.Second
	if s := r.URL.Query().Get("timeout"); s != "" {
		if timeout, err = time.ParseDuration(s); err != nil || timeout <= 0 || timeout > time.Minute {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("timeout: %q is not a duration from 1ms to 1m, such as 3s or 500ms", s))
			return
		}
	}
	start := time.Now()
	var firstHit time.Duration
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	started := false
	count := 0
	err = a.n.Search(r.Context(), q, max, timeout, func(h proto.Hit) bool {
		if !started {
			firstHit = time.Since(start)
			w.WriteHeader(http.StatusOK)
			started = true
		}
		count++
		if enc.Encode(SearchEvent{Type: "hit", Hit: &h}) != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	})
	if err != nil && !started {
		code := http.StatusServiceUnavailable
		var pe *proto.Error
		if errors.As(err, &pe) {
			switch pe.Code {
			case proto.CodeBadRequest:
				code = http.StatusBadRequest
			case proto.CodeRateLimited:
				code = http.StatusTooManyRequests
			}
		}
		a.m.searchErrors.Inc(strconv.Itoa(code))
		writeError(w, code, err.Error())
		return
	}
	elapsed := time.Since(start)
	a.m.observeSearch(elapsed, firstHit, count)
	done := SearchEvent{Type: "done", Hits: count, ElapsedMS: float64(elapsed.Microseconds()) / 1000}
	if err != nil {
		done.Error = err.Error()
	}
	_ = enc.Encode(done)
}

// DownloadRequest starts a download.
type DownloadRequest struct {
	ContentID string `json:"content_id"`
	Name      string `json:"name,omitempty"`
}

func (a *controlAPI) startDownload(w http.ResponseWriter, r *http.Request) {
	var req DownloadRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error()+`; want JSON {"content_id": "<64 hex digits>", "name": "optional file name"}`)
		return
	}
	cid, err := proto.ParseContentID(req.ContentID)
	if err != nil {
		writeError(w, http.StatusBadRequest, "content_id: "+err.Error())
		return
	}
	if req.Name != "" {
		if err := proto.ValidateEntry(&proto.FileEntry{ContentID: cid, Name: req.Name}); err != nil {
			writeError(w, http.StatusBadRequest, "name: "+err.Error())
			return
		}
	}
	d, err := a.n.dl.Get(cid, req.Name)
	if err != nil {
		// Get refuses a name it will not save under (hidden, or a partial
		// download's suffix), or fails because the node is shutting down.
		code := http.StatusServiceUnavailable
		if req.Name != "" {
			code = http.StatusBadRequest
		}
		writeError(w, code, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, d)
}

func intParam(r *http.Request, name string, def int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%s: %q is not a positive whole number", name, s)
	}
	return v, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
