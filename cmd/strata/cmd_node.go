package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-p2p/strata/node"
	"github.com/strata-p2p/strata/promotion"
	"github.com/strata-p2p/strata/supernode"
)

func init() { extraCommands = append(extraCommands, newNodeCmd) }

var nodeSettings = []string{"bootstrap", "listen", "share", "downloads", "state-dir", "api", "role", "supernodes",
	"max-leaves", "mesh-degree", "heartbeat", "rescan", "upload-slots", "max-upload-rate", "api-token",
	"promotion-hold", "promotion-confidence", "promotion-min-cores", "promotion-max-load", "probe-every", "bench-files",
	"relay-max-sessions", "relay-max-rate", "relay-total-rate", "relay-session-bytes", "relay-hour-bytes", "connect-rate"}

func newNodeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a node: share folders, search the network, and serve as a supernode when needed",
		Long: `Run a Strata node. It gets supernodes from the bootstrap server(s) (or, when
none answers, from the host cache of supernodes it has seen), attaches to
--supernodes of them (default 2), uploads the list of files in its --share
folders to each (and sends changes as they happen), and answers to "strata
search" and "strata status" on its local control API (--api). With --role auto
(the default) the promotion engine decides: it measures the node (bandwidth in
transfers or a probe, CPU, memory, load, uptime; the bootstrap server dials it
back), and the node becomes a supernode when a bootstrap server asks and it is
eligible, or steps down (handing its leaves to other supernodes first) when
asked. The --promotion-* flags tune it. --role leaf and --role supernode pin
the role.
An --api address that is not loopback needs a bearer token: --api-token, or
one generated into <state-dir>/api-token (see docs/API.md).

When ready it prints one JSON line to standard output:
{"event":"ready","role":...,"peer_id":...,"quic":...,"api":...}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			log, err := newLogger(c, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer log.Sync()
			node.Version = version
			rate, err := parseRate(c.String("max-upload-rate"))
			if err != nil {
				return fmt.Errorf("--max-upload-rate: %w", err)
			}
			sc := supernode.DefaultConfig()
			sc.MaxLeaves = c.Int("max-leaves")
			sc.MeshDegree = c.Int("mesh-degree")
			if sc.Reach, err = reachConfig(c); err != nil {
				return err
			}
			pc := promotion.Config{MinInterval: c.Duration("promotion-hold"), Confidence: c.Int("promotion-confidence"),
				MinCores: c.Float("promotion-min-cores"), MaxLoad1: c.Float("promotion-max-load")}
			n, err := node.New(node.Config{
				StateDir: c.String("state-dir"), Listen: c.String("listen"), API: c.String("api"),
				Bootstraps: c.Strings("bootstrap"), ShareDirs: c.Strings("share"), Downloads: c.String("downloads"),
				Role: c.String("role"), Supernodes: c.Int("supernodes"), Supernode: sc, Rescan: c.Duration("rescan"), Heartbeat: c.Duration("heartbeat"),
				UploadSlots: c.Int("upload-slots"), MaxUploadRate: rate, APIToken: c.String("api-token"),
				Promotion: pc, ProbeEvery: c.Duration("probe-every"), BenchFiles: c.Int("bench-files"), Logger: log,
			})
			if err != nil {
				return err
			}
			return n.Run(cmd.Context(), func(r node.Ready) {
				b, _ := json.Marshal(r)
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
			})
		},
	}
	addSettingFlags(cmd.Flags(), nodeSettings...)
	return cmd
}

// reachConfig reads the relay's quotas.
func reachConfig(c *config) (supernode.ReachConfig, error) {
	rc := supernode.DefaultReachConfig()
	rc.MaxRelaySessions = c.Int("relay-max-sessions")
	rc.ConnectRate = c.Float("connect-rate")
	for _, f := range []struct {
		name string
		to   *int64
	}{{"relay-max-rate", &rc.RelaySessionRate}, {"relay-total-rate", &rc.RelayTotalRate}, {"relay-session-bytes", &rc.RelaySessionBytes},
		{"relay-hour-bytes", &rc.RelayHourBytes}} {
		v, err := parseRate(c.String(f.name))
		if err != nil {
			return rc, fmt.Errorf("--%s: %w", f.name, err)
		}
		if v <= 0 {
			return rc, fmt.Errorf("--%s: the relay's limits are finite: give a size such as 1MB", f.name)
		}
		*f.to = v
	}
	if rc.MaxRelaySessions <= 0 || rc.ConnectRate <= 0 {
		return rc, fmt.Errorf("--relay-max-sessions and --connect-rate must be positive")
	}
	return rc, nil
}
