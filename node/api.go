package node

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/strata-p2p/strata/internal/shares"
	"github.com/strata-p2p/strata/internal/transfer"
	"github.com/strata-p2p/strata/proto"
	"github.com/strata-p2p/strata/supernode"
)

// Status is what `strata status` shows for a node.
type Status struct {
	PeerID     proto.PeerID          `json:"peer_id"`
	Role       proto.Role            `json:"role"`
	RolePolicy string                `json:"role_policy"`
	Listen     []string              `json:"listen"`
	API        string                `json:"api"`
	UptimeS    float64               `json:"uptime_s"`
	Shares     shares.Stats          `json:"shares"`
	Attached   *AttachedStatus       `json:"attached,omitempty"`
	Uploads    transfer.UploadStatus `json:"uploads"`
	Supernode  *SupernodeStatus      `json:"supernode,omitempty"`
	Events     []Event               `json:"events"`
}

// AttachedStatus is a leaf's supernode.
type AttachedStatus struct {
	Supernode proto.PeerInfo `json:"supernode"`
	SinceS    float64        `json:"since_s"`
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
}

// Status returns the node's current state.
func (n *Node) Status() Status {
	n.mu.Lock()
	st := Status{PeerID: n.PeerID(), Role: n.role, RolePolicy: n.cfg.Role, UptimeS: time.Since(n.start).Seconds(),
		Events: append([]Event(nil), n.events...), Listen: n.listenAddrsLocked()}
	sn, att := n.sn, n.att
	n.mu.Unlock()
	if n.api != nil {
		st.API = n.api.Addr().String()
	}
	st.Shares = n.lib.Stats()
	st.Uploads = n.up.Status()
	if att != nil {
		st.Attached = &AttachedStatus{Supernode: att.sn, SinceS: time.Since(att.at).Seconds()}
	}
	if sn != nil {
		s := &SupernodeStatus{QueueDrops: sn.QueueDrops()}
		sn.With(func(c *supernode.Core) {
			s.Leaves, s.Neighbours = c.Leaves(), c.Neighbours()
			s.IndexFiles, s.IndexBytes, s.Routes = c.IndexFiles(), c.IndexBytes(), c.Routes()
			s.Capacity, s.Stats = c.Config().MaxLeaves, c.Stats()
		})
		st.Supernode = s
	}
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

func (n *Node) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, n.Status())
	})
	mux.HandleFunc("GET /v1/shares", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, n.lib.Files())
	})
	mux.HandleFunc("GET /v1/search", n.apiSearch)
	mux.HandleFunc("GET /v1/downloads", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, n.dl.List())
	})
	mux.HandleFunc("POST /v1/downloads", n.apiStartDownload)
	mux.HandleFunc("GET /v1/downloads/{id}", func(w http.ResponseWriter, r *http.Request) {
		d, ok := n.dl.Status(r.PathValue("id"))
		if !ok {
			writeError(w, http.StatusNotFound, "no download with ID "+r.PathValue("id")+"; see `strata downloads`")
			return
		}
		writeJSON(w, http.StatusOK, d)
	})
	mux.HandleFunc("DELETE /v1/downloads/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := n.dl.Cancel(r.PathValue("id")); err != nil {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"cancelled": r.PathValue("id")})
	})
	return apiGuard(mux)
}

// apiSearch streams hits as JSON lines (application/x-ndjson), one per hit
// as it arrives, then a "done" line.
func (n *Node) apiSearch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("q")
	max, err := intParam(r, "max", 100)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	timeout := 3 * time.Second
	if s := r.URL.Query().Get("timeout"); s != "" {
		if timeout, err = time.ParseDuration(s); err != nil || timeout <= 0 || timeout > time.Minute {
			writeError(w, http.StatusBadRequest, "timeout: want a duration such as 3s, up to 1m")
			return
		}
	}
	start := time.Now()
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	started := false
	count := 0
	err = n.Search(r.Context(), q, max, timeout, func(h proto.Hit) bool {
		if !started {
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
		writeError(w, code, err.Error())
		return
	}
	done := SearchEvent{Type: "done", Hits: count, ElapsedMS: float64(time.Since(start).Microseconds()) / 1000}
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

func (n *Node) apiStartDownload(w http.ResponseWriter, r *http.Request) {
	var req DownloadRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: want JSON {\"content_id\": \"<64 hex digits>\", \"name\": \"optional\"}")
		return
	}
	cid, err := proto.ParseContentID(req.ContentID)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Name != "" {
		if err := proto.ValidateEntry(&proto.FileEntry{ContentID: cid, Name: req.Name}); err != nil {
			writeError(w, http.StatusBadRequest, "name: "+err.Error())
			return
		}
	}
	d, err := n.dl.Get(cid, req.Name)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
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
		return 0, errors.New(name + ": want a positive whole number")
	}
	return v, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// apiGuard refuses requests from web pages of other origins (a browser
// sends Origin on cross-site requests), so a page can't drive the node.
func apiGuard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
			writeError(w, http.StatusForbidden, "cross-origin requests are not allowed")
			return
		}
		h.ServeHTTP(w, r)
	})
}
