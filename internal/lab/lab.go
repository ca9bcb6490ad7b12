// Package lab runs a Strata network on one machine: a bootstrap server and
// nodes as child processes of the strata binary, over real QUIC on
// loopback, each node with its own capacity (CPU budget, upload cap, leaf
// slots) and a generated share folder of realistic files. It is what
// `strata lab` runs, and what its scripts (see Script) drive: add nodes,
// kill or freeze them, search and download through their control APIs.
package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Config describes a lab. The zero value (with Binary set) is valid.
type Config struct {
	// Binary is the strata executable the children run (os.Executable for
	// `strata lab`).
	Binary string
	// Nodes is how many nodes Start starts. Zero means DefaultNodes;
	// negative is refused. A script may start its own.
	Nodes int
	// Seed draws the share folders and the capacity profiles; the same seed
	// gives the same files and profiles.
	Seed uint64
	// Dir is where the lab's folder is made; "" is the system's temporary
	// folder. Keep leaves the folder in place on Close.
	Dir  string
	Keep bool
	// BootstrapPort is the bootstrap server's QUIC (UDP) port and
	// BootstrapPort+1 its API (TCP); APIPortBase+i is node i's API port
	// (node1 gets APIPortBase+1). Zero picks free ports.
	BootstrapPort int
	APIPortBase   int
	// Heartbeat and Rescan are passed to the nodes (--heartbeat, --rescan);
	// zero leaves the nodes' defaults.
	Heartbeat, Rescan time.Duration
	// ReadyTimeout bounds the wait for each child's ready line; zero is 60 s.
	ReadyTimeout time.Duration
	// ExtraNodeArgs are appended to every node's command line.
	ExtraNodeArgs []string
	Logger        *zap.Logger
}

// DefaultNodes is the size of a lab when Config.Nodes is zero.
const DefaultNodes = 12

// MaxNodes bounds a lab on one machine.
const MaxNodes = 200

func (c *Config) validate() error {
	var errs []error
	if c.Binary == "" {
		errs = append(errs, errors.New("lab: Config.Binary is empty; set it to the strata executable"))
	}
	if c.Nodes < 0 || c.Nodes > MaxNodes {
		errs = append(errs, fmt.Errorf("lab: %d nodes: ask for 1 to %d (--nodes)", c.Nodes, MaxNodes))
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"--bootstrap-port", c.BootstrapPort}, {"--api-port", c.APIPortBase}} {
		if p.v < 0 || p.v > 65535-MaxNodes {
			errs = append(errs, fmt.Errorf("lab: %s %d: use 0 (free ports) or a port from 1024 to %d", p.name, p.v, 65535-MaxNodes))
		}
	}
	return errors.Join(errs...)
}

// Lab is a running lab.
type Lab struct {
	cfg       Config
	log       *zap.Logger
	dir       string
	started   time.Time
	Bootstrap *Proc

	mu    sync.Mutex
	nodes []*Proc // in the order started; dead ones stay (node numbers are stable)
}

// New checks cfg and makes the lab's folder; Start starts the processes.
func New(cfg Config) (*Lab, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	parent := cfg.Dir
	if parent == "" {
		parent = os.TempDir()
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("lab folder: %w; pick another with --dir", diskError(err))
	}
	n := cfg.Nodes
	if n == 0 {
		n = DefaultNodes
	}
	if free := freeBytes(parent); free >= 0 && free < int64(n+1)*shareBudget {
		return nil, fmt.Errorf("%w in %s: %d MiB free, the lab needs about %d MiB for %d nodes; free some space, ask for fewer --nodes, or put the lab elsewhere with --dir",
			ErrNoSpace, parent, free>>20, (int64(n+1)*shareBudget)>>20, n)
	}
	dir, err := os.MkdirTemp(parent, "strata-lab-")
	if err != nil {
		return nil, fmt.Errorf("lab folder in %s: %w; pick another with --dir", parent, diskError(err))
	}
	return &Lab{cfg: cfg, log: cfg.Logger, dir: dir}, nil
}

// Dir is the lab's folder.
func (l *Lab) Dir() string { return l.dir }

// Start starts the bootstrap server and Config.Nodes nodes (DefaultNodes
// when zero; none when Nodes is negative is refused by New). It waits for
// each ready line, not for the overlay to form: see WaitSettled.
func (l *Lab) Start(ctx context.Context, nodes int) error {
	l.started = time.Now()
	if err := l.startBootstrap(); err != nil {
		return err
	}
	_, err := l.AddNodes(ctx, nodes)
	return err
}

func (l *Lab) env(cpus int) []string {
	env := []string{}
	for _, kv := range os.Environ() {
		// The lab's own settings must not leak into its children: each gets
		// its flags.
		if !strings.HasPrefix(kv, "STRATA_") && !strings.HasPrefix(kv, "GOMAXPROCS=") {
			env = append(env, kv)
		}
	}
	if cpus > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(cpus))
	}
	return env
}

// portAddr is 127.0.0.1:port, after checking that the port is free for
// network ("tcp" or "udp"), with an error that says what to do.
func portAddr(network string, port int, flag string) (string, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if port == 0 {
		return addr, nil
	}
	var err error
	if network == "udp" {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp", addr); err == nil {
			_ = c.Close()
		}
	} else {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			_ = ln.Close()
		}
	}
	if err != nil {
		return "", fmt.Errorf("port %d (%s) is in use: another lab or strata process may hold it; stop it, pick another port with %s, or use %s 0 for free ports", port, network, flag, flag)
	}
	return addr, nil
}

func (l *Lab) startBootstrap() error {
	listen, err := portAddr("udp", l.cfg.BootstrapPort, "--bootstrap-port")
	if err != nil {
		return err
	}
	api := "127.0.0.1:0"
	if l.cfg.BootstrapPort != 0 {
		if api, err = portAddr("tcp", l.cfg.BootstrapPort+1, "--bootstrap-port"); err != nil {
			return err
		}
	}
	dir := filepath.Join(l.dir, "bootstrap")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return diskError(err)
	}
	p, err := startProc(l.cfg.Binary, "bootstrap", dir, l.env(0),
		append([]string{"bootstrap", "--listen", listen, "--api", api, "--state-dir", filepath.Join(dir, "state")},
			labBootstrapPromotion...), l.cfg.ReadyTimeout)
	if err != nil {
		return err
	}
	l.Bootstrap = p
	l.log.Debug("bootstrap ready", zap.String("quic", p.Ready.QUIC), zap.String("api", p.Ready.API))
	return nil
}

// profileFor draws node i's capacity from the seed: a spread from a weak
// peer on a thin uplink to a strong one, as in a real network.
func profileFor(seed uint64, i int) Profile {
	tiers := []Profile{
		{CPUs: 1, Upload: "64KB", MaxLeaves: 2},
		{CPUs: 1, Upload: "256KB", MaxLeaves: 3},
		{CPUs: 1, Upload: "1MB", MaxLeaves: 4},
		{CPUs: 2, Upload: "4MB", MaxLeaves: 5},
		{CPUs: 2, Upload: "", MaxLeaves: 6},
	}
	return tiers[(uint64(i)*7+seed)%uint64(len(tiers))]
}

// AddNodes starts n more nodes, one after another (the bootstrap server
// promotes one node at a time), and returns them.
func (l *Lab) AddNodes(ctx context.Context, n int) ([]*Proc, error) {
	var added []*Proc
	for range n {
		if err := ctx.Err(); err != nil {
			return added, err
		}
		p, err := l.addNode()
		if err != nil {
			return added, err
		}
		added = append(added, p)
	}
	return added, nil
}

func (l *Lab) addNode() (*Proc, error) {
	l.mu.Lock()
	i := len(l.nodes) + 1
	l.mu.Unlock()
	name := "node" + strconv.Itoa(i)
	api := "127.0.0.1:0"
	if l.cfg.APIPortBase != 0 {
		var err error
		if api, err = portAddr("tcp", l.cfg.APIPortBase+i, "--api-port"); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	dir := filepath.Join(l.dir, name)
	share := filepath.Join(dir, "share")
	if free := freeBytes(l.dir); free >= 0 && free < shareBudget {
		return nil, fmt.Errorf("%s: %w in %s (%d KiB free); free some space or put the lab elsewhere with --dir", name, ErrNoSpace, l.dir, free>>10)
	}
	if err := os.MkdirAll(share, 0o755); err != nil {
		return nil, diskError(err)
	}
	if _, err := fillShare(share, i-1, l.cfg.Seed); err != nil {
		return nil, fmt.Errorf("%s: generating its share folder: %w", name, err)
	}
	prof := profileFor(l.cfg.Seed, i-1)
	args := []string{"node", "--bootstrap", l.Bootstrap.Ready.QUIC, "--listen", "127.0.0.1:0", "--api", api,
		"--state-dir", filepath.Join(dir, "state"), "--share", share, "--downloads", filepath.Join(dir, "downloads"),
		"--max-leaves", strconv.Itoa(prof.MaxLeaves), "--max-upload-rate", prof.Upload}
	args = append(args, labNodePromotion...)
	if l.cfg.Heartbeat > 0 {
		args = append(args, "--heartbeat", l.cfg.Heartbeat.String())
	}
	if l.cfg.Rescan > 0 {
		args = append(args, "--rescan", l.cfg.Rescan.String())
	}
	args = append(args, l.cfg.ExtraNodeArgs...)
	p, err := startProc(l.cfg.Binary, name, dir, l.env(prof.CPUs), args, l.cfg.ReadyTimeout)
	if err != nil {
		return nil, err
	}
	p.Profile = prof
	l.mu.Lock()
	l.nodes = append(l.nodes, p)
	l.mu.Unlock()
	l.log.Debug("node ready", zap.String("name", name), zap.String("api", p.Ready.API))
	return p, nil
}

// Nodes returns every node started, dead ones included, in order.
func (l *Lab) Nodes() []*Proc {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.nodes)
}

// Node returns the node called name ("node3"), or the bootstrap server.
func (l *Lab) Node(name string) (*Proc, error) {
	if name == "bootstrap" && l.Bootstrap != nil {
		return l.Bootstrap, nil
	}
	for _, p := range l.Nodes() {
		if p.Name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no node %q; the lab has node1 to node%d and bootstrap", name, len(l.Nodes()))
}

// Restart stops the node or bootstrap server called name and starts it
// again on its state folder and addresses; it returns the new process.
func (l *Lab) Restart(name string) (*Proc, error) {
	p, err := l.Node(name)
	if err != nil {
		return nil, err
	}
	np, err := p.restart()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if p == l.Bootstrap {
		l.Bootstrap = np
	}
	for i := range l.nodes {
		if l.nodes[i] == p {
			l.nodes[i] = np
		}
	}
	return np, nil
}

// Close stops every child (SIGTERM, then SIGKILL after a few seconds) and
// removes the lab's folder unless Config.Keep is set.
func (l *Lab) Close() error {
	var wg sync.WaitGroup
	for _, p := range l.Nodes() {
		wg.Go(func() { p.Stop(5 * time.Second) })
	}
	wg.Wait()
	if l.Bootstrap != nil {
		l.Bootstrap.Stop(5 * time.Second)
	}
	if l.cfg.Keep {
		return nil
	}
	if err := os.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("removing the lab folder %s: %w", l.dir, err)
	}
	return nil
}

// Lab timings for the promotion engine, so that an overlay forms, promotes
// and steps down while someone watches (production keeps its defaults: a
// 30-minute hold-down between role changes, 10 s check-ins). The load gate
// is off: a dozen nodes share this one machine, so its load average says
// nothing about any one of them; the other gates (measured upload, cores,
// reachability by dial-back) still decide. Three leaves per supernode
// (KaZaA ran about 100) gives a dozen nodes several supernodes to look at.
var (
	labBootstrapPromotion = []string{"--check-in", "1s", "--promotion-hold", "10s", "--leaves-per-supernode", "3",
		// Every lab node checks in from 127.0.0.1: the per-address limit
		// against floods of promotion requests must let a dozen through.
		"--promotion-request-rate", "100", "--promotion-request-burst", "100"}
	labNodePromotion = []string{"--promotion-hold", "10s", "--promotion-confidence", "2",
		"--promotion-max-load", "-1", "--bench-files", "2000"}
)
