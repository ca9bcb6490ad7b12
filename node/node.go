// Package node is a Strata peer: its identity, its shares, its attachment to
// a supernode, its searches and its control API. When the network (or
// --role supernode) says so, it runs the supernode role in-process on the
// same QUIC socket.
package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/bootstrap"
	"github.com/strata-p2p/strata/internal/hostcache"
	"github.com/strata-p2p/strata/internal/identity"
	"github.com/strata-p2p/strata/internal/metrics"
	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/internal/shares"
	"github.com/strata-p2p/strata/internal/transfer"
	"github.com/strata-p2p/strata/internal/transport/quicnet"
	"github.com/strata-p2p/strata/promotion"
	"github.com/strata-p2p/strata/proto"
	"github.com/strata-p2p/strata/supernode"
)

// shutdownHandOff bounds how long a supernode shutting down waits for its
// leaves to move to other supernodes.
const shutdownHandOff = 3 * time.Second

// Version is the agent string's version; cmd/strata sets it.
var Version = "dev"

// Role policy for a node.
const (
	RoleAuto      = "auto"
	RoleLeaf      = "leaf"
	RoleSupernode = "supernode"
)

// Config is everything a node needs; cmd/strata fills it from flags,
// environment and config files.
type Config struct {
	StateDir   string   // identity key, hash cache
	Listen     string   // QUIC UDP address
	API        string   // control API TCP address (loopback)
	Bootstraps []string // bootstrap servers
	ShareDirs  []string
	Downloads  string
	Role       string // auto, leaf or supernode
	// Supernodes is how many supernodes a leaf keeps attachments to
	// (1 to MaxSupernodes; 0 means DefaultSupernodes).
	Supernodes int
	Supernode  supernode.Config
	Rescan     time.Duration // how often share folders are checked
	Heartbeat  time.Duration // supernode heartbeat to the bootstraps
	// UploadSlots is how many uploads run at once (others queue);
	// MaxUploadRate caps upload bytes per second (0: no cap).
	UploadSlots   int
	MaxUploadRate int64
	Transport     quicnet.Config
	Logger        *zap.Logger

	// Promotion tunes the promotion policy (thresholds, hold-down between
	// role changes, confidence); its zero value is promotion.DefaultConfig.
	Promotion promotion.Config
	// ProbeEvery is the least time between two bandwidth probes, run when
	// no transfer has measured the rates; BenchFiles the size of the index
	// benchmark's corpus. Zero: promotion's defaults.
	ProbeEvery time.Duration
	BenchFiles int

	// APIToken is the bearer token the control API requires. When it is
	// empty and API is not a loopback address, a token is generated into
	// <StateDir>/api-token (and reused); on loopback none is needed.
	APIToken string
}

// Leaf attachments: a leaf keeps DefaultSupernodes supernodes unless told
// otherwise, and at most MaxSupernodes.
const (
	DefaultSupernodes = 2
	MaxSupernodes     = 5
)

// DefaultConfig returns the library defaults (addresses are left to cmd).
func DefaultConfig() Config {
	return Config{Role: RoleAuto, Supernodes: DefaultSupernodes, Rescan: 2 * time.Second, Heartbeat: time.Second,
		Supernode: supernode.DefaultConfig()}
}

func (c *Config) validate() error {
	d := DefaultConfig()
	switch c.Role {
	case "":
		c.Role = d.Role
	case RoleAuto, RoleLeaf, RoleSupernode:
	default:
		return fmt.Errorf("--role %q: want auto, leaf or supernode", c.Role)
	}
	if c.StateDir == "" {
		return errors.New("no state directory: set --state-dir")
	}
	if c.Listen == "" {
		return errors.New("no listen address: set --listen (e.g. 0.0.0.0:7400, or port 0 for any)")
	}
	if c.Downloads == "" {
		return errors.New("no downloads folder: set --downloads")
	}
	if len(c.Bootstraps) == 0 && c.Role != RoleSupernode {
		return errors.New("no bootstrap server: set --bootstrap HOST:PORT (or run with --role supernode to start a network)")
	}
	for _, b := range c.Bootstraps {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("--bootstrap %q: want HOST:PORT", b)
		}
	}
	switch {
	case c.Supernodes == 0:
		c.Supernodes = d.Supernodes
	case c.Supernodes < 0 || c.Supernodes > MaxSupernodes:
		return fmt.Errorf("--supernodes %d: want 1 to %d", c.Supernodes, MaxSupernodes)
	}
	if c.Rescan <= 0 {
		c.Rescan = d.Rescan
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = d.Heartbeat
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return nil
}

// Node is a running peer.
type Node struct {
	cfg   Config
	log   *zap.Logger
	id    *identity.Identity
	lib   *shares.Library
	start time.Time

	tr  *quicnet.Transport
	api net.Listener
	bc  *bootstrap.Client
	up  *transfer.Uploader
	dl  *transfer.Manager

	hosts         *hostcache.Cache // supernodes seen, persisted in <StateDir>/hostcache
	searchRetries atomic.Uint64    // searches sent again on another supernode

	scanMu sync.Mutex // held while scanning and while a new attachment snapshots the shares

	mu       sync.Mutex
	role     proto.Role
	sn       *supernode.Runtime
	snStop   context.CancelFunc // ends the supernode role's heartbeats
	atts     []*attachment      // a leaf's live attachments, in the order made
	leafDone chan struct{}      // closed when the current leafLoop ends
	prom     *promoter
	observed string // our address as a bootstrap saw it
	events   []Event
	rch      reachState // reachability: dial-back result, push, punch, relay (reach.go)

	firstAnswer atomic.Pointer[metrics.Histogram] // the control API's, for the supernode role

	wg sync.WaitGroup
}

// Event is a role or attachment change, kept for status.
type Event struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
}

// New loads the identity and opens the share library. It starts nothing.
func New(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w", cfg.StateDir, err)
	}
	id, created, err := identity.LoadOrCreate(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	if created {
		cfg.Logger.Info("created a new identity", zap.Stringer("peer_id", id.PeerID()))
	}
	// Finished downloads are shared: the downloads folder is a share folder
	// unless it already lies inside one.
	if err := os.MkdirAll(cfg.Downloads, 0o755); err != nil {
		return nil, fmt.Errorf("downloads folder %s: %w", cfg.Downloads, err)
	}
	dirs := append([]string(nil), cfg.ShareDirs...)
	if !insideAny(cfg.Downloads, dirs) {
		dirs = append(dirs, cfg.Downloads)
	}
	lib, err := shares.Open(shares.Config{Dirs: dirs, StateDir: cfg.StateDir, Logger: cfg.Logger.Named("shares")})
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, id: id, lib: lib, role: proto.RoleLeaf, hosts: openHostCache(cfg)}
	if err := n.initTransfers(); err != nil {
		lib.Close()
		return nil, err
	}
	return n, nil
}

// PeerID is the node's peer ID.
func (n *Node) PeerID() proto.PeerID { return n.id.PeerID() }

// Ready describes a started node.
type Ready struct {
	Event  string       `json:"event"`
	Role   string       `json:"role"`
	PeerID proto.PeerID `json:"peer_id"`
	QUIC   string       `json:"quic"`
	API    string       `json:"api"`
}

// Run starts the node and blocks until ctx ends; ready is called once the
// sockets are bound and the first scan is done.
func (n *Node) Run(ctx context.Context, ready func(Ready)) (err error) {
	n.start = time.Now()
	libClosed := false
	defer func() {
		if !libClosed { // an early return: still save the hash cache
			_ = n.lib.Close()
		}
	}()
	tcfg := n.cfg.Transport
	tcfg.Logger = n.log.Named("quic")
	n.tr, err = quicnet.Listen(n.cfg.Listen, n.id, tcfg)
	if err != nil {
		return err
	}
	defer n.tr.Close()
	n.api, err = net.Listen("tcp", n.cfg.API)
	if err != nil {
		return fmt.Errorf("control API on %s: %w (is another node using it? pick another with --api)", n.cfg.API, err)
	}
	h, err := n.apiHandler()
	if err != nil {
		_ = n.api.Close()
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}

	if err := n.scan(ctx, true); err != nil && ctx.Err() == nil {
		n.log.Warn("share scan failed", zap.Error(err))
	}
	n.bc = bootstrap.NewClient(n.tr, n.hello(), n.log.Named("bootstrap"))
	defer func() { n.bootstrapClient().Close() }()
	if err := n.initPromotion(); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n.goRun(func() { _ = srv.Serve(n.api) })
	n.goRun(func() { n.acceptLoop(ctx) })
	n.goRun(func() { n.rescanLoop(ctx) })
	n.goRun(func() { n.saveHostsLoop(ctx) })
	n.dl.Start(ctx)
	n.goRun(func() { n.promotionLoop(ctx) })
	leafDone := make(chan struct{})
	n.mu.Lock()
	n.leafDone = leafDone
	n.mu.Unlock()
	if n.cfg.Role == RoleSupernode {
		close(leafDone)
		n.becomeSupernode(ctx, "started with --role supernode")
	} else {
		n.goRun(func() { defer close(leafDone); n.leafLoop(ctx) })
	}
	if ready != nil {
		ready(Ready{Event: "ready", Role: n.Role().String(), PeerID: n.PeerID(), QUIC: n.tr.Addr().String(), API: n.api.Addr().String()})
	}
	<-ctx.Done()
	n.log.Info("shutting down")
	// A leaf says goodbye to its supernode (so its files vanish at once)
	// before the transport closes.
	n.mu.Lock()
	leafDone = n.leafDone // a supernode that stepped down runs another leafLoop
	n.mu.Unlock()
	select {
	case <-leafDone:
	case <-time.After(2 * time.Second):
	}
	shutCtx, c2 := context.WithTimeout(context.Background(), 3*time.Second)
	_ = srv.Shutdown(shutCtx)
	c2()
	n.mu.Lock()
	sn := n.sn
	n.mu.Unlock()
	if sn != nil {
		// A supernode hands its leaves off before it goes, as in a step
		// down: each attaches to another supernode, then leaves this one.
		hctx, c3 := context.WithTimeout(context.Background(), shutdownHandOff)
		told, left := sn.HandOff(hctx, n.hosts.Infos(), "shutting down")
		c3()
		if told > 0 {
			n.note(fmt.Sprintf("shutting down: told %d leaves to move, %d still attached", told, left))
		}
		sn.Close()
	}
	n.dl.Close()
	n.up.Close()
	_ = n.tr.Close()
	n.wg.Wait()
	if err := n.hosts.Save(); err != nil {
		n.log.Warn("host cache not saved", zap.Error(err))
	}
	libClosed = true
	return n.lib.Close()
}

func (n *Node) goRun(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// Role is the node's current role.
func (n *Node) Role() proto.Role {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.role
}

func (n *Node) note(what string) {
	n.mu.Lock()
	n.events = append(n.events, Event{At: time.Now(), What: what})
	if len(n.events) > 100 {
		n.events = n.events[len(n.events)-100:]
	}
	n.mu.Unlock()
	n.log.Info(what)
}

func (n *Node) bootstrapClient() *bootstrap.Client {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.bc
}

// listenAddrs is what the node advertises: its bound address, with an
// unspecified host replaced by the one a bootstrap observed.
func (n *Node) listenAddrs() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.listenAddrsLocked()
}

func (n *Node) listenAddrsLocked() []string {
	addr := n.tr.Addr().String()
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if oh, _, err := net.SplitHostPort(n.observed); err == nil {
			return []string{net.JoinHostPort(oh, port)}
		}
	}
	return []string{addr}
}

func (n *Node) hello() proto.Hello {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.helloLocked()
}

func (n *Node) helloLocked() proto.Hello {
	return proto.Hello{MinVersion: proto.MinVersion, MaxVersion: proto.MaxVersion, Role: n.role,
		ListenAddrs: n.listenAddrsLocked(), Agent: "strata/" + Version, Reachable: n.Reachability()}
}

func (n *Node) selfInfo() proto.PeerInfo {
	return proto.PeerInfo{ID: n.PeerID(), Addrs: n.listenAddrs(), Role: n.Role(), Reachable: n.Reachability()}
}

// acceptLoop takes every incoming connection, runs the hello and serves its
// streams with the handlers of the node's current role.
func (n *Node) acceptLoop(ctx context.Context) {
	for {
		c, err := n.tr.Accept(ctx)
		if err != nil {
			return
		}
		n.goRun(func() {
			s, err := session.Server(ctx, c, n.hello())
			if err != nil {
				n.log.Info("refused a connection: hello failed", zap.Stringer("peer", c.RemotePeer()),
					zap.Stringer("code", proto.CodeOf(err)), zap.Error(err))
				return
			}
			n.deliver(s) // a download waiting for this peer to connect (push, punch)
			_ = s.Serve(ctx, n.log, 0, n.handleStream)
			_ = c.CloseWithError(proto.CodeOK, "")
		})
	}
}

func (n *Node) handleStream(ctx context.Context, s *session.Session, st *session.Stream, first proto.Message) {
	if p, ok := first.(*proto.Ping); ok {
		_ = st.Send(&proto.Pong{Nonce: p.Nonce})
		st.Finish()
		return
	}
	if n.up.HandleStream(ctx, s, st, first) {
		return
	}
	n.mu.Lock()
	sn := n.sn
	n.mu.Unlock()
	if sn != nil && sn.HandleStream(ctx, s, st, first) {
		return
	}
	switch first.(type) {
	case *proto.Attach, *proto.Query, *proto.PeerList:
		st.Fail(proto.Errorf(proto.CodeRefused, "this node is a leaf, not a supernode"))
	default:
		st.Fail(proto.Errorf(proto.CodeProtocol, "unexpected %s", first.Type()))
	}
}

// scan rescans the share folders and sends what changed to wherever the
// node's files are indexed.
func (n *Node) scan(ctx context.Context, first bool) error {
	n.scanMu.Lock()
	defer n.scanMu.Unlock()
	var last time.Time
	progress := func(p shares.Progress) {
		if first && time.Since(last) > time.Second && p.FilesTotal > 0 {
			last = time.Now()
			n.log.Info("scanning shares", zap.Int("files_done", p.FilesDone), zap.Int("files_total", p.FilesTotal),
				zap.Int64("mb_done", p.BytesDone>>20), zap.Int64("mb_total", p.BytesTotal>>20))
		}
	}
	diff, err := n.lib.Scan(ctx, progress)
	if err != nil {
		return err
	}
	if first {
		n.log.Info("shares ready", zap.Int("files", n.lib.Len()))
	}
	n.publishLocked(diff)
	return nil
}

// publishLocked sends a share diff to wherever the node's files are
// indexed. scanMu must be held.
func (n *Node) publishLocked(diff shares.Diff) {
	if diff.Empty() {
		return
	}
	n.mu.Lock()
	sn, atts := n.sn, n.atts
	n.mu.Unlock()
	if sn != nil {
		sn.With(func(c *supernode.Core) {
			_, _ = c.RemoveShares(n.PeerID(), refs(diff.Removed))
			_, _ = c.AddShares(n.PeerID(), diff.Added)
		})
		return
	}
	for _, a := range atts {
		a.push(diff)
	}
}

// insideAny reports whether dir is one of dirs or below one.
func insideAny(dir string, dirs []string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for _, d := range dirs {
		da, err := filepath.Abs(d)
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(da, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

func refs(es []proto.FileEntry) []proto.FileRef {
	out := make([]proto.FileRef, len(es))
	for i, e := range es {
		out[i] = proto.FileRef{ContentID: e.ContentID, Name: e.Name}
	}
	return out
}

func (n *Node) rescanLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.Rescan)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := n.scan(ctx, false); err != nil && ctx.Err() == nil {
				n.log.Warn("share rescan failed", zap.Error(err))
			}
		}
	}
}

// becomeSupernode starts the supernode role in-process: it indexes the
// node's own files, serves leaves and mesh links on the node's socket, and
// registers with the bootstrap servers.
func (n *Node) becomeSupernode(ctx context.Context, why string) {
	n.mu.Lock()
	if n.sn != nil {
		n.mu.Unlock()
		return
	}
	n.role = proto.RoleSupernode
	atts := n.atts
	n.atts = nil
	n.mu.Unlock()
	for _, a := range atts {
		a.close("becoming a supernode")
	}
	rt := supernode.NewRuntime(supernode.RuntimeConfig{Core: n.cfg.Supernode, Logger: n.log.Named("supernode"),
		OnFirstHit: n.observeFirstAnswer},
		n.tr, n.selfInfo(), n.hello)
	n.scanMu.Lock()
	rt.With(func(c *supernode.Core) {
		_, _ = c.AddShares(n.PeerID(), n.lib.Files())
		c.Learn(time.Now(), n.hosts.Infos()) // mesh candidates even with every bootstrap down
	})
	// The role lives until Close, not until ctx ends: on shutdown it keeps
	// serving while it hands its leaves off (Run).
	rt.Start(context.WithoutCancel(ctx)) // before streams can reach it
	n.mu.Lock()
	n.sn = rt
	n.mu.Unlock()
	n.scanMu.Unlock()
	n.note("became a supernode: " + why)
	// Later bootstrap sessions must present the supernode role.
	n.swapBootstrapClient()
	hbCtx, stop := context.WithCancel(ctx)
	n.mu.Lock()
	n.snStop = stop
	n.mu.Unlock()
	n.goRun(func() { n.heartbeatLoop(hbCtx, rt) })
}

// learnAddrs takes, for a node bound to a wildcard address, the host a
// bootstrap server saw it at (its RegisterReply.Addrs), so that what the
// supernode advertises itself (in hits' Via, to its mesh) can be dialled.
func (n *Node) learnAddrs(addrs []string) {
	host, _, _ := net.SplitHostPort(n.tr.Addr().String())
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() || len(addrs) == 0 {
		return
	}
	if h, _, err := net.SplitHostPort(addrs[0]); err == nil {
		if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() {
			n.mu.Lock()
			n.observed = addrs[0]
			n.mu.Unlock()
		}
	}
}

// heartbeatLoop registers with every bootstrap server and feeds the mesh
// peers they return to the supernode.
func (n *Node) heartbeatLoop(ctx context.Context, rt *supernode.Runtime) {
	t := time.NewTicker(n.cfg.Heartbeat)
	defer t.Stop()
	warned := false
	for {
		var load proto.Load
		rt.With(func(c *supernode.Core) {
			c.SetAddrs(n.listenAddrs(), n.Reachability())
			load = c.Load()
		})
		registered := false
		if len(n.cfg.Bootstraps) > 0 {
			rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			replies, err := n.bootstrapClient().Register(rctx, n.cfg.Bootstraps, n.listenAddrs(), load)
			cancel()
			registered = err == nil
			if err != nil && ctx.Err() == nil && !warned {
				n.log.Warn("cannot register with any bootstrap server; will keep trying, meanwhile finding mesh neighbours through the host cache", zap.Error(err))
				warned = true
			}
			var topo proto.Topology
			rt.With(func(c *supernode.Core) {
				for _, nb := range c.Neighbours() {
					topo.Neighbours = append(topo.Neighbours, nb.ID)
				}
				for _, l := range c.Leaves() {
					if len(topo.Leaves) < proto.MaxTopologyIDs {
						topo.Leaves = append(topo.Leaves, l.Peer.ID)
					}
				}
			})
			for addr, r := range replies {
				warned = false
				n.learnAddrs(r.Addrs)
				rt.With(func(c *supernode.Core) { c.Learn(time.Now(), r.Peers) })
				n.hosts.Add(time.Now(), r.Peers...)
				tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				if err := n.bootstrapClient().SendTopology(tctx, addr, &topo); err != nil && ctx.Err() == nil {
					n.log.Debug("topology report failed", zap.String("bootstrap", addr), zap.Error(err))
				}
				cancel()
			}
		}
		n.refreshHosts(rt, !registered)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
