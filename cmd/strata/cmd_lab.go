package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-p2p/strata/internal/lab"
)

func init() { extraCommands = append(extraCommands, newLabCmd) }

type labOptions struct {
	nodes         int
	seed          uint64
	dir           string
	keep          bool
	asJSON        bool
	script        string
	bootstrapPort int
	apiPort       int
	settle        time.Duration
}

func newLabCmd() *cobra.Command {
	var o labOptions
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run a whole Strata network on this machine: a bootstrap server and nodes with generated shares",
		Long: `Run a Strata network on this machine, with no setup: a bootstrap server and
--nodes nodes (child processes of this binary) over real QUIC on 127.0.0.1,
each with its own CPU budget (GOMAXPROCS), upload cap and leaf slots, and a
generated share folder of realistic files (MP3s with real frame headers and
ID3 tags, PDFs and text documents, PNG and JPEG pictures; some files are on
several nodes). It prints where to look and runs until Ctrl-C, then stops
every process it started and removes its folder (unless --keep).

With --script FILE it runs a scripted experiment instead, prints what
happened step by step, and exits non-zero when an expectation fails. The
script starts its own nodes (unless --nodes is given). Steps:

` + lab.ScriptHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLab(cmd, o)
		},
	}
	cmd.AddCommand(newLabShareCmd())
	fs := cmd.Flags()
	fs.IntVar(&o.nodes, "nodes", lab.DefaultNodes, "how many nodes to start")
	fs.Uint64Var(&o.seed, "seed", 1, "seed for the generated share folders and node capacities")
	fs.StringVar(&o.dir, "dir", "", "where to make the lab's folder (default: the system's temporary folder)")
	fs.BoolVar(&o.keep, "keep", false, "keep the lab's folder (state, shares, downloads, logs) after it stops")
	fs.BoolVar(&o.asJSON, "json", false, "print the lab's nodes and addresses as JSON once it is up")
	fs.StringVar(&o.script, "script", "", "run the experiment in `FILE` and exit (see the steps above)")
	fs.IntVar(&o.bootstrapPort, "bootstrap-port", 0, "the bootstrap server's QUIC port (its API gets the next one); 0 picks free ports")
	fs.IntVar(&o.apiPort, "api-port", 0, "node N's API gets this port plus N; 0 picks free ports")
	fs.DurationVar(&o.settle, "settle", 30*time.Second, "how long to wait for every node to attach before printing the summary")
	return cmd
}

func runLab(cmd *cobra.Command, o labOptions) error {
	c, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	log, err := newLogger(c, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	out := cmd.OutOrStdout()
	nodes := o.nodes
	if nodes <= 0 {
		return fmt.Errorf("--nodes %d: a lab needs at least one node; try --nodes %d (the default) or leave it out", o.nodes, lab.DefaultNodes)
	}
	var script *lab.Script
	if o.script != "" {
		f, err := os.Open(o.script)
		if err != nil {
			return fmt.Errorf("--script: %w", err)
		}
		script, err = lab.ParseScript(o.script, f)
		_ = f.Close()
		if err != nil {
			return err
		}
		if !cmd.Flags().Changed("nodes") {
			nodes = 0 // the script starts its own
		}
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find the strata executable to run the lab's processes: %w", err)
	}
	l, err := lab.New(lab.Config{Binary: bin, Nodes: max(nodes, 1), Seed: o.seed, Dir: o.dir, Keep: o.keep,
		BootstrapPort: o.bootstrapPort, APIPortBase: o.apiPort, Logger: log.Named("lab")})
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	defer func() {
		if err := l.Close(); err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "strata lab:", err)
		} else if o.keep {
			fmt.Fprintf(cmd.ErrOrStderr(), "strata lab: stopped; its folder is kept in %s\n", l.Dir())
		}
	}()
	switch {
	case script != nil:
		fmt.Fprintf(out, "Running %s (%d steps) in %s\n", o.script, len(script.Steps), l.Dir())
	case !o.asJSON:
		fmt.Fprintf(out, "Starting a bootstrap server and %d nodes in %s ...\n", nodes, l.Dir())
	}
	if err := l.Start(ctx, nodes); err != nil {
		if ctx.Err() != nil {
			return nil // Ctrl-C while starting
		}
		return err
	}
	if script != nil {
		return script.Run(ctx, l, out)
	}
	ov, settled := l.WaitSettled(ctx, o.settle)
	if ctx.Err() != nil {
		return nil
	}
	if o.asJSON {
		if err := printJSON(out, labInfo(l, ov)); err != nil {
			return err
		}
	} else {
		printLabSummary(out, l, ov, settled)
	}
	watchLab(ctx, l, cmd.ErrOrStderr())
	if !o.asJSON {
		fmt.Fprintln(out, "\nStopping the lab ...")
	}
	return nil
}

// watchLab waits for ctx to end, saying when a child exits on its own.
func watchLab(ctx context.Context, l *lab.Lab, w io.Writer) {
	told := map[string]bool{}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range append(l.Nodes(), l.Bootstrap) {
			if !p.Alive() && !told[p.Name] {
				told[p.Name] = true
				fmt.Fprintf(w, "strata lab: %s exited (%v); its log is %s\n", p.Name, p.ExitError(), p.Log)
			}
		}
	}
}

// labProg is how the user runs strata: the binary's name, or `go run` when
// this is a binary go run built.
func labProg() string {
	bin, _ := os.Executable()
	if strings.Contains(bin, "go-build") {
		return "go run ./cmd/strata"
	}
	if strings.Contains(bin, "/") && !onPath(bin) {
		return bin
	}
	return "strata"
}

func onPath(bin string) bool {
	for _, d := range strings.Split(os.Getenv("PATH"), string(os.PathListSeparator)) {
		if d != "" && strings.TrimSuffix(d, "/")+"/strata" == bin {
			return true
		}
	}
	return false
}

func printLabSummary(w io.Writer, l *lab.Lab, ov lab.Overlay, settled bool) {
	bs := l.Bootstrap.Ready
	fmt.Fprintf(w, "\nStrata lab: %d nodes, %d supernodes, over QUIC on 127.0.0.1\n\n", len(l.Nodes()), len(ov.Supernodes()))
	fmt.Fprintf(w, "  network map (bootstrap)  http://%s/\n", bs.API)
	if sns := ov.Supernodes(); len(sns) > 0 {
		p, _ := l.Node(sns[0])
		fmt.Fprintf(w, "  a node's console         http://%s/   (%s; every node has one at its API address)\n", p.Ready.API, p.Name)
	}
	fmt.Fprintf(w, "  bootstrap QUIC           %s   (join your own node with --bootstrap %s)\n\n", bs.QUIC, bs.QUIC)
	lab.WriteOverlay(w, l, ov)
	if !settled {
		fmt.Fprintf(w, "\n  Not every node is attached yet (%s); `strata status` shows them as they join.\n", strings.Join(ov.Unattached(), " "))
	}
	fmt.Fprintln(w, "\nTry:")
	for _, e := range lab.Examples(labProg(), l, ov) {
		fmt.Fprintln(w, "  "+e)
	}
	fmt.Fprintf(w, "\nFolder %s (each node's state, share, downloads and log).\n", l.Dir())
	fmt.Fprintln(w, "Ctrl-C stops every process and removes the folder (--keep keeps it).")
}

// labNodeInfo is one node in `strata lab --json`.
type labNodeInfo struct {
	Name      string      `json:"name"`
	Role      string      `json:"role"`
	PeerID    string      `json:"peer_id"`
	QUIC      string      `json:"quic"`
	API       string      `json:"api"`
	Supernode string      `json:"supernode,omitempty"` // a leaf's, by name
	Profile   lab.Profile `json:"profile"`
	Dir       string      `json:"dir"`
	Log       string      `json:"log"`
}

func labInfo(l *lab.Lab, ov lab.Overlay) map[string]any {
	byID := map[string]string{}
	for _, p := range l.Nodes() {
		byID[p.Ready.PeerID.String()] = p.Name
	}
	nodes := []labNodeInfo{}
	for _, p := range l.Nodes() {
		n := labNodeInfo{Name: p.Name, PeerID: p.Ready.PeerID.String(), QUIC: p.Ready.QUIC, API: p.Ready.API,
			Profile: p.Profile, Dir: p.Dir, Log: p.Log, Role: "unknown"}
		if st, ok := ov.Status[p.Name]; ok {
			n.Role = st.Role
			if st.Attached != nil && !st.IsSupernode() {
				n.Supernode = byID[st.Attached.Supernode.ID.String()]
			}
		}
		nodes = append(nodes, n)
	}
	bs := l.Bootstrap.Ready
	return map[string]any{"event": "ready", "dir": l.Dir(), "supernodes": ov.Supernodes(), "unattached": ov.Unattached(),
		"bootstrap": map[string]string{"peer_id": bs.PeerID.String(), "quic": bs.QUIC, "api": bs.API, "map": "http://" + bs.API + "/"},
		"nodes":     nodes}
}

// newLabShareCmd is `strata lab share`: the container lab's way to give
// each node the generated share folder `strata lab` would, then become the
// node (exec, so a scratch image needs no shell).
func newLabShareCmd() *cobra.Command {
	var (
		dir   string
		index int
		seed  uint64
	)
	cmd := &cobra.Command{
		Use:   "share [flags] [-- strata arguments...]",
		Short: "Write a lab node's generated share folder, then optionally run strata with the arguments after --",
		Long: `Write the generated share folder of lab node number --index (from 0) into
--dir (default: the first of STRATA_SHARE), as "strata lab" does, unless the
folder already holds files. With arguments after --, strata then replaces
itself with "strata ARGUMENTS" (e.g. -- node), so a container image needs
no shell.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				dir, _, _ = strings.Cut(os.Getenv("STRATA_SHARE"), ",")
			}
			if dir == "" {
				return fmt.Errorf("no share folder: give --dir or set STRATA_SHARE")
			}
			n, err := lab.FillShare(dir, index, seed)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "strata lab share: %d files written to %s\n", n, dir)
			if len(args) == 0 {
				return nil
			}
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			return execSelf(bin, args)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the share folder to fill")
	cmd.Flags().IntVar(&index, "index", 0, "the lab node number (from 0): which files it gets")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "seed for the generated files")
	return cmd
}
