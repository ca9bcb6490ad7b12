package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/strata-p2p/strata/bootstrap"
	"github.com/strata-p2p/strata/internal/identity"
	"github.com/strata-p2p/strata/internal/transport/quicnet"
	"github.com/strata-p2p/strata/node"
	"github.com/strata-p2p/strata/promotion"
	"github.com/strata-p2p/strata/proto"
)

func init() { extraCommands = append(extraCommands, newBootstrapCmd) }

// The bootstrap server's own defaults for the shared "listen" and "api"
// settings, whose table defaults are the node's.
const (
	bootstrapDefaultListen = "0.0.0.0:7300"
	bootstrapDefaultAPI    = "127.0.0.1:7301"
)

// bootstrapDefaultStateDir keeps the bootstrap server's identity apart from
// a node's on the same machine: sharing the key would give both one peer ID.
func bootstrapDefaultStateDir() string { return filepath.Join(defaultStateDir(), "bootstrap") }

func newBootstrapCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Run a bootstrap server: supernodes register with it, joining nodes ask it for supernodes",
		Long: `Run a Strata bootstrap server on --listen (UDP, QUIC). Supernodes register
with it and heartbeat their load every --heartbeat; joining nodes ask it for
supernodes with free leaf slots. It runs the promotion planner: nodes check in
every --check-in, it dials each back (from a second UDP socket) to learn
whether others can reach it, answers small rate-limited bandwidth probes, and
every heartbeat works out how many supernodes the network needs for
--leaves-per-supernode leaves each with --headroom to spare, asking the best
measured candidates to step up or the weakest supernodes to step down. Its state is soft: after a restart it knows the
network again from the next heartbeats. Run several for redundancy and list
them all in the nodes' --bootstrap.

GET /v1/status on --api shows the supernodes it knows and their load,
GET /v1/topology the network map's data, and /metrics Prometheus metrics
(docs/API.md). An --api address that is not loopback needs a bearer token:
--api-token, or one generated into <state-dir>/api-token.

When ready it prints one JSON line to standard output:
{"event":"ready","role":"bootstrap","peer_id":...,"quic":...,"api":...}`,
		Args: cobra.NoArgs,
		RunE: runBootstrap,
	}
	fs := cmd.Flags()
	addSettingFlags(fs, "listen", "state-dir", "api", "api-token", "heartbeat", "check-in", "leaves-per-supernode",
		"headroom", "promotion-hold", "promotion-request-rate", "promotion-request-burst")
	setFlagDefault(fs, "listen", bootstrapDefaultListen)
	setFlagDefault(fs, "api", bootstrapDefaultAPI)
	setFlagDefault(fs, "state-dir", bootstrapDefaultStateDir())
	return cmd
}

// setFlagDefault replaces the default of a flag defined from the settings
// table, for a command whose default differs from the table's.
func setFlagDefault(fs *pflag.FlagSet, name, def string) {
	f := fs.Lookup(name)
	if err := f.Value.Set(def); err != nil {
		panic(fmt.Sprintf("strata: default %q for --%s: %v", def, name, err)) // programming error
	}
	f.DefValue = def
}

func runBootstrap(cmd *cobra.Command, _ []string) error {
	c, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	log, err := newLogger(c, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	stateDir := c.String("state-dir")
	id, created, err := identity.LoadOrCreate(stateDir)
	if err != nil {
		return err
	}
	if created {
		log.Info("created a new identity", zap.String("state_dir", stateDir), zap.Stringer("peer_id", id.PeerID()))
	}

	listen, api := c.String("listen"), c.String("api")
	tr, err := quicnet.Listen(listen, id, quicnet.Config{Logger: log})
	if err != nil {
		return err
	}
	defer tr.Close()
	// Dial-backs come from a socket of their own: a firewall that lets the
	// answers to a node's packets through must not make it look reachable.
	host, _, _ := net.SplitHostPort(tr.Addr().String())
	dialTr, err := quicnet.Listen(net.JoinHostPort(host, "0"), id, quicnet.Config{Logger: log.Named("dial-back")})
	if err != nil {
		return fmt.Errorf("dial-back socket: %w", err)
	}
	defer dialTr.Close()

	cfg := bootstrap.DefaultConfig()
	cfg.Logger = log
	cfg.Agent = "strata/" + version
	cfg.Heartbeat = c.Duration("heartbeat")
	cfg.Expiry = cfg.Heartbeat * 7 / 2
	cfg.CheckIn = c.Duration("check-in")
	cfg.DialBack = dialTr
	cfg.Promotion = promotion.Config{LeavesPerSupernode: c.Float("leaves-per-supernode"), Headroom: c.Float("headroom"),
		MinInterval: c.Duration("promotion-hold")}
	cfg.Requests = promotion.RequestLimits{Rate: c.Float("promotion-request-rate"), Burst: c.Int("promotion-request-burst")}
	srv, err := bootstrap.New(cfg, id.PeerID())
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", api)
	if err != nil {
		return fmt.Errorf("cannot listen on %s for the status API: %w (is another process using that port? pick another with --api)", api, err)
	}
	handler, err := srv.APIHandler(bootstrap.APIConfig{Addr: ln.Addr(), Token: c.String("api-token"), StateDir: stateDir, Logger: log})
	if err != nil {
		_ = ln.Close()
		return err
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, ErrorLog: zap.NewStdLog(log)}

	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		if err := srv.Serve(ctx, tr); err != nil {
			errc <- err
		}
	})
	wg.Go(func() {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("status API on %s: %w", ln.Addr(), err)
		}
	})

	ready, err := json.Marshal(node.Ready{Event: "ready", Role: proto.RoleBootstrap.String(), PeerID: id.PeerID(),
		QUIC: tr.Addr().String(), API: ln.Addr().String()})
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), string(ready))
	log.Info("bootstrap server ready", zap.Stringer("peer_id", id.PeerID()),
		zap.Stringer("quic", tr.Addr()), zap.Stringer("api", ln.Addr()))

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-errc:
		log.Error("bootstrap server failed; shutting down", zap.Error(runErr))
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
	}
	_ = srv.Close()
	_ = tr.Close()
	return runErr
}
