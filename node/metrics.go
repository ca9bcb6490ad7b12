package node

import (
	"strings"
	"time"

	"github.com/strata-p2p/strata/internal/metrics"
	"github.com/strata-p2p/strata/internal/transfer"
	"github.com/strata-p2p/strata/proto"
)

// Buckets of the search histograms. Searches end at their timeout (3 s by
// default, at most a minute), so latency buckets reach 60 s.
var (
	searchSecondsBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	searchHitsBuckets    = []float64{0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}
	// A supernode answers from its own index in microseconds; hits from the
	// mesh take round trips.
	answerSecondsBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
)

// observeFirstAnswer records a supernode's time to first answer in the
// current API's metrics.
func (n *Node) observeFirstAnswer(d time.Duration) {
	if h := n.firstAnswer.Load(); h != nil {
		h.Observe(d.Seconds())
	}
}

// nodeMetrics is a node's /metrics: the searches run through the control
// API are observed as they end; everything else is read from Status at
// each scrape. It belongs to one run of the API (apiHandler makes it).
type nodeMetrics struct {
	n   *Node
	reg *metrics.Registry

	searchSeconds   *metrics.Histogram
	firstHitSeconds *metrics.Histogram
	searchHits      *metrics.Histogram
	searchErrors    *metrics.Counter
	firstAnswer     *metrics.Histogram // observed by the supernode role (Node.observeFirstAnswer)
	searchRetries   *metrics.Counter

	info, role, uptime                     *metrics.Gauge
	connections                            *metrics.Gauge
	leaves, capacity, neighbours           *metrics.Gauge
	indexFiles, indexBytes, routes         *metrics.Gauge
	queriesReceived, queriesForwarded      *metrics.Counter
	queriesAnswered, hitsSent, drops       *metrics.Counter
	uploaded, downloaded, relayed          *metrics.Counter
	reachRequests, reachRefused, sourceVia *metrics.Counter
	reachTicketed                          *metrics.Counter
	relaySessions                          *metrics.Gauge
	roleChanges, attachments               *metrics.Counter
	sharedFiles, sharedBytes               *metrics.Gauge
	uploadsActive, uploadsQueued, uploadQ  *metrics.Gauge
	downloads                              *metrics.Gauge

	// Scrape state, used only by collect (scrapes are serialised).
	dlBytes   map[dlKey]uint64 // verified bytes per download at the last scrape
	lastEvent *Event           // the newest event already counted
}

// dlKey names one run of a download: a download cancelled and asked for
// again keeps its ID but starts anew.
type dlKey struct {
	id      string
	started time.Time
}

func newNodeMetrics(n *Node) *nodeMetrics {
	r := metrics.NewRegistry()
	m := &nodeMetrics{n: n, reg: r, dlBytes: map[dlKey]uint64{}}

	m.searchSeconds = r.Histogram("strata_search_duration_seconds",
		"Time from the start of a search through the control API (/v1/search) to its done line.", searchSecondsBuckets)
	m.firstHitSeconds = r.Histogram("strata_search_first_hit_seconds",
		"Time from the start of a search through the control API to its first hit (searches with no hit are not observed).", searchSecondsBuckets)
	m.searchHits = r.Histogram("strata_search_hits",
		"Hits per search through the control API.", searchHitsBuckets)
	m.firstAnswer = r.Histogram("strata_supernode_first_answer_seconds",
		"Time from a leaf's query arriving at this supernode to the first hit sent back to it (queries with no hit are not observed).", answerSecondsBuckets)
	n.firstAnswer.Store(m.firstAnswer)
	m.searchErrors = r.Counter("strata_search_errors_total",
		"Searches through the control API that failed, by HTTP status (400 bad query, 429 rate limited, 503 not attached or supernode unreachable).", "code")

	m.searchRetries = r.Counter("strata_search_retries_total",
		"Searches (through the API or for download sources) that failed on one supernode before any hit and were sent again on another.")

	m.info = r.Gauge("strata_node_info", "Always 1; the labels say which node this is.", "peer_id", "version")
	m.role = r.Gauge("strata_role", "1 for the node's current role, 0 for the other.", "role")
	m.uptime = r.Gauge("strata_uptime_seconds", "Seconds since the node started.")
	m.connections = r.Gauge("strata_connections",
		"Overlay sessions the node holds, by the role of the other end: its supernodes (a leaf has 0 to --supernodes), its leaves and its neighbour supernodes (a supernode). Transfers and bootstrap requests are not counted.", "peer")

	m.leaves = r.Gauge("strata_leaves", "Leaves attached to this supernode (0 on a leaf).")
	m.capacity = r.Gauge("strata_leaf_capacity", "Leaves this supernode accepts (--max-leaves; 0 on a leaf).")
	m.neighbours = r.Gauge("strata_neighbours", "Neighbour supernodes in this supernode's mesh.")
	m.indexFiles = r.Gauge("strata_index_files", "Files in this supernode's keyword index (its own and its leaves').")
	m.indexBytes = r.Gauge("strata_index_bytes", "Memory held by this supernode's keyword index.")
	m.routes = r.Gauge("strata_query_routes", "Query IDs this supernode remembers for reverse-path routing and duplicate suppression.")
	m.queriesReceived = r.Counter("strata_queries_received_total",
		"Queries this supernode received, from its leaves (and the node itself) or from mesh neighbours.", "from")
	m.queriesForwarded = r.Counter("strata_queries_forwarded_total", "Queries this supernode forwarded to neighbours (one per neighbour sent to).")
	m.queriesAnswered = r.Counter("strata_queries_answered_total", "Queries this supernode answered with at least one hit from its index.")
	m.hitsSent = r.Counter("strata_hits_sent_total", "Hits this supernode sent back toward askers.")
	m.drops = r.Counter("strata_drops_total",
		"Messages, queries or hits this supernode dropped, by reason (the supernode core's reasons, and mesh_queue_full for a full send queue to a neighbour).", "reason")

	m.uploaded = r.Counter("strata_uploaded_bytes_total", "File bytes this node sent to downloaders.")
	m.downloaded = r.Counter("strata_downloaded_bytes_total", "File bytes this node received and verified for its downloads.")
	m.relayed = r.Counter("strata_relayed_bytes_total", "Bytes this supernode relayed between two of its leaves (both directions; the peers' own encrypted QUIC packets).")
	m.reachRequests = r.Counter("strata_reach_requests_total", "Push, hole-punch and relay requests this supernode accepted for its leaves, by mode.", "mode")
	m.reachTicketed = r.Counter("strata_reach_ticket_requests_total", "Of those, the requests from peers that are not this supernode's leaves, allowed by a search hit's ticket for the target.")
	m.reachRefused = r.Counter("strata_reach_refused_total",
		"Reachability requests refused or failed, by reason: on a supernode stranger, target_not_attached, rate_limited, relay_full, relay_over_quota, bad_request, target_did_not_join, unknown_relay_session; on a leaf dial_back_rate_limited, bad_notice, <mode>_failed.", "reason")
	m.sourceVia = r.Counter("strata_sources_reached_total", "Download sources this node reached other than directly, by way (push, punch, relay).", "via")
	m.relaySessions = r.Gauge("strata_relay_sessions", "Relay sessions this supernode carries now.")
	m.roleChanges = r.Counter("strata_role_changes_total", "Changes of this node's role, by the new role (starting with --role supernode counts once).", "to")
	m.attachments = r.Counter("strata_attachment_changes_total", "A leaf attaching to or detaching from a supernode.", "change")

	m.sharedFiles = r.Gauge("strata_shared_files", "Files this node shares.")
	m.sharedBytes = r.Gauge("strata_shared_bytes", "Total size of the files this node shares.")
	m.uploadsActive = r.Gauge("strata_uploads_active", "Uploads being sent now.")
	m.uploadsQueued = r.Gauge("strata_uploads_queued", "Upload requests waiting for a slot.")
	m.uploadQ = r.Gauge("strata_upload_slots", "Upload slots (--upload-slots).")
	m.downloads = r.Gauge("strata_downloads", "Downloads the node knows, by state (finished ones are kept up to a limit).", "state")

	// Partial downloads loaded at start were counted by an earlier run.
	for _, d := range n.dl.List() {
		m.dlBytes[dlKey{d.ID, d.StartedAt}] = sourceBytes(d)
	}
	m.role.Set(0, proto.RoleLeaf.String())
	m.role.Set(0, proto.RoleSupernode.String())
	for _, p := range []string{"supernode", "leaf", "neighbour"} {
		m.connections.Set(0, p)
	}
	m.queriesReceived.Set(0, "leaf")
	m.queriesReceived.Set(0, "mesh")
	m.roleChanges.Add(0, proto.RoleSupernode.String())
	m.roleChanges.Add(0, proto.RoleLeaf.String())
	m.attachments.Add(0, "attached")
	for _, mode := range []string{"push", "punch", "relay"} {
		m.reachRequests.Add(0, mode)
		m.sourceVia.Add(0, mode)
	}
	m.attachments.Add(0, "detached")
	r.OnCollect(m.collect)
	return m
}

// observeSearch records one search through the control API.
func (m *nodeMetrics) observeSearch(elapsed, firstHit time.Duration, hits int) {
	m.searchSeconds.Observe(elapsed.Seconds())
	m.searchHits.Observe(float64(hits))
	if hits > 0 {
		m.firstHitSeconds.Observe(firstHit.Seconds())
	}
}

// collect copies the node's state into the registry; it runs at each scrape.
func (m *nodeMetrics) collect() {
	st := m.n.Status()
	m.info.Set(1, st.PeerID.String(), Version)
	m.role.Set(0, proto.RoleLeaf.String())
	m.role.Set(0, proto.RoleSupernode.String())
	m.role.Set(1, st.Role.String())
	m.uptime.Set(st.UptimeS)

	m.connections.Set(float64(len(st.Attachments)), "supernode")
	m.searchRetries.Set(float64(st.SearchRetries))
	var s SupernodeStatus
	if st.Supernode != nil {
		s = *st.Supernode
	}
	m.connections.Set(float64(len(s.Leaves)), "leaf")
	m.connections.Set(float64(len(s.Neighbours)), "neighbour")
	m.leaves.Set(float64(len(s.Leaves)))
	m.capacity.Set(float64(s.Capacity))
	m.neighbours.Set(float64(len(s.Neighbours)))
	m.indexFiles.Set(float64(s.IndexFiles))
	m.indexBytes.Set(float64(s.IndexBytes))
	m.routes.Set(float64(s.Routes))
	m.queriesReceived.Set(float64(s.Stats.QueriesFromLeaves), "leaf")
	m.queriesReceived.Set(float64(s.Stats.QueriesFromMesh), "mesh")
	m.queriesForwarded.Set(float64(s.Stats.QueriesForwarded))
	m.queriesAnswered.Set(float64(s.Stats.QueriesAnswered))
	m.hitsSent.Set(float64(s.Stats.HitsSent))
	for reason, v := range s.Stats.Drops {
		m.drops.Set(float64(v), reason)
	}
	if st.Supernode != nil {
		m.drops.Set(float64(s.QueueDrops), "mesh_queue_full")
	}

	m.sharedFiles.Set(float64(st.Shares.Files))
	m.sharedBytes.Set(float64(st.Shares.Bytes))
	m.uploaded.Set(float64(st.Uploads.BytesTotal))
	m.relayed.Set(float64(s.Reach.RelayedBytes))
	m.relaySessions.Set(float64(s.Reach.RelaySessions))
	for k, v := range s.Reach.Requests {
		m.reachRequests.Set(float64(v), k)
	}
	m.reachTicketed.Set(float64(s.Reach.Ticketed))
	for k, v := range s.Reach.Refused {
		m.reachRefused.Set(float64(v), k)
	}
	for k, v := range st.Reach.Refused {
		m.reachRefused.Set(float64(v), k)
	}
	for k, v := range st.Reach.Via {
		m.sourceVia.Set(float64(v), k)
	}
	m.uploadsActive.Set(float64(len(st.Uploads.Active)))
	m.uploadsQueued.Set(float64(st.Uploads.Queued))
	m.uploadQ.Set(float64(st.Uploads.Slots))

	m.collectDownloads(m.n.dl.List())
	m.collectEvents(st.Events)
}

// collectDownloads adds the verified bytes received since the last scrape.
func (m *nodeMetrics) collectDownloads(list []transfer.DownloadStatus) {
	seen := make(map[dlKey]uint64, len(list))
	m.downloads.Reset()
	for _, st := range []string{transfer.StateFinding, transfer.StateDownloading, transfer.StateVerifying,
		transfer.StateDone, transfer.StateFailed, transfer.StateCancelled} {
		m.downloads.Set(0, st)
	}
	for _, d := range list {
		m.downloads.Add(1, d.State)
		k := dlKey{d.ID, d.StartedAt}
		now := sourceBytes(d)
		if prev := m.dlBytes[k]; now > prev {
			m.downloaded.Add(float64(now - prev))
		}
		seen[k] = max(now, m.dlBytes[k])
	}
	m.dlBytes = seen // downloads no longer listed are forgotten
}

// sourceBytes is what a download received from the network (a file the
// node already had completes without any).
func sourceBytes(d transfer.DownloadStatus) uint64 {
	var b uint64
	for _, s := range d.Sources {
		b += s.Bytes
	}
	return b
}

// collectEvents counts the role and attachment changes among the events
// newer than the last scrape. The node keeps its last 100 events; more
// between two scrapes are undercounted.
func (m *nodeMetrics) collectEvents(events []Event) {
	start := 0
	if m.lastEvent != nil {
		for i := len(events) - 1; i >= 0; i-- {
			if events[i].At.Equal(m.lastEvent.At) && events[i].What == m.lastEvent.What {
				start = i + 1
				break
			}
		}
	}
	for _, e := range events[start:] {
		switch {
		case strings.HasPrefix(e.What, "became a "):
			to, _, _ := strings.Cut(strings.TrimPrefix(e.What, "became a "), ":")
			if to != proto.RoleSupernode.String() && to != proto.RoleLeaf.String() {
				to = "other"
			}
			m.roleChanges.Inc(to)
		case strings.HasPrefix(e.What, "attached to "):
			m.attachments.Inc("attached")
		case strings.HasPrefix(e.What, "detached from "):
			m.attachments.Inc("detached")
		}
	}
	if len(events) > 0 {
		last := events[len(events)-1]
		m.lastEvent = &last
	}
}
