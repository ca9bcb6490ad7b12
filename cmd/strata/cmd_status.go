package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-p2p/strata/node"
)

func init() { extraCommands = append(extraCommands, newStatusCmd) }

func newStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a running node's or bootstrap server's state",
		Long: `Show the state of the node (or bootstrap server) whose control API is at --api:
peer ID, role, attached supernodes (healthiest first); for a supernode its leaves, neighbours and
index size; for a bootstrap server the supernodes it knows with their load.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			resp, err := api.get("/v1/status", nil, 5*time.Second)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
			if err != nil {
				return err
			}
			if asJSON {
				_, err := cmd.OutOrStdout().Write(body)
				return err
			}
			var probe struct{ Role string }
			_ = json.Unmarshal(body, &probe)
			if probe.Role == "bootstrap" {
				return printBootstrapStatus(cmd.OutOrStdout(), body)
			}
			var st node.Status
			if err := json.Unmarshal(body, &st); err != nil {
				return fmt.Errorf("bad status from the node: %v", err)
			}
			printNodeStatus(cmd.OutOrStdout(), &st)
			return nil
		},
	}
	addSettingFlags(cmd.Flags(), "api", "api-token")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func printNodeStatus(w io.Writer, st *node.Status) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "peer ID\t%s\n", st.PeerID)
	fmt.Fprintf(tw, "role\t%s (policy: %s)\n", st.Role, st.RolePolicy)
	fmt.Fprintf(tw, "listening\t%s\n", strings.Join(st.Listen, ", "))
	fmt.Fprintf(tw, "uptime\t%s\n", time.Duration(st.UptimeS*float64(time.Second)).Round(time.Second))
	fmt.Fprintf(tw, "sharing\t%d files, %s\n", st.Shares.Files, humanBytes(st.Shares.Bytes))
	cap := "no cap"
	if st.Uploads.MaxRate > 0 {
		cap = humanBytes(uint64(st.Uploads.MaxRate)) + "/s cap"
	}
	fmt.Fprintf(tw, "uploads\t%d/%d slots busy, %d queued (queue holds %d), %s sent, %s\n", len(st.Uploads.Active),
		st.Uploads.Slots, st.Uploads.Queued, st.Uploads.QueueLen, humanBytes(st.Uploads.BytesTotal), cap)
	if st.Supernode == nil {
		fmt.Fprintf(tw, "supernodes\t%d of %d attached (%d in the host cache)\n", len(st.Attachments), st.Wanted, st.HostCache)
	}
	_ = tw.Flush()
	if len(st.Attachments) > 0 {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nSUPERNODE\tADDRESS\tFOR\tRTT\tHEALTH")
		for i, a := range st.Attachments {
			health := "ok"
			if !a.Responsive {
				health = "not answering"
			} else if a.SearchFailures > 0 {
				health = fmt.Sprintf("%d failed searches", a.SearchFailures)
			}
			if i == 0 {
				health += " (searches go here first)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f ms\t%s\n", a.Supernode.ID, strings.Join(a.Supernode.Addrs, ", "),
				time.Duration(a.SinceS*float64(time.Second)).Round(time.Second), a.RTTMS, health)
		}
		_ = tw.Flush()
	}
	_ = tw.Flush()
	if s := st.Supernode; s != nil {
		fmt.Fprintf(w, "\nsupernode role: %d/%d leaves, %d neighbours, %d files indexed (%s), %d queries remembered\n",
			len(s.Leaves), s.Capacity, len(s.Neighbours), s.IndexFiles, humanBytes(uint64(s.IndexBytes)), s.Routes)
		fmt.Fprintf(w, "queries: %d from leaves, %d from the mesh, %d forwarded, %d answered, %d hits sent\n",
			s.Stats.QueriesFromLeaves, s.Stats.QueriesFromMesh, s.Stats.QueriesForwarded, s.Stats.QueriesAnswered, s.Stats.HitsSent)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		if len(s.Neighbours) > 0 {
			fmt.Fprintln(tw, "\nNEIGHBOUR\tADDRESS\tLEAVES")
			for _, nb := range s.Neighbours {
				fmt.Fprintf(tw, "%s\t%s\t%d/%d\n", nb.ID, strings.Join(nb.Addrs, ","), nb.Load.Leaves, nb.Load.Capacity)
			}
		}
		if len(s.Leaves) > 0 {
			fmt.Fprintln(tw, "\nLEAF\tADDRESS\tFILES")
			for _, l := range s.Leaves {
				fmt.Fprintf(tw, "%s\t%s\t%d\n", l.Peer.ID, strings.Join(l.Peer.Addrs, ","), l.Files)
			}
		}
		_ = tw.Flush()
	}
}

func printBootstrapStatus(w io.Writer, body []byte) error {
	var st struct {
		PeerID     string `json:"peer_id"`
		Supernodes []struct {
			PeerID string   `json:"peer_id"`
			Addrs  []string `json:"addrs"`
			Load   struct {
				Leaves     int `json:"leaves"`
				Capacity   int `json:"capacity"`
				IndexFiles int `json:"index_files"`
				Neighbours int `json:"neighbours"`
			} `json:"load"`
			LastSeenMS float64 `json:"last_seen_ms"`
		} `json:"supernodes"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("bad status from the bootstrap server: %v", err)
	}
	fmt.Fprintf(w, "bootstrap server %s: %d supernodes\n", st.PeerID, len(st.Supernodes))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SUPERNODE\tADDRESS\tLEAVES\tFILES\tNEIGHBOURS\tLAST HEARTBEAT")
	for _, s := range st.Supernodes {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%.1fs ago\n", s.PeerID, strings.Join(s.Addrs, ","),
			s.Load.Leaves, s.Load.Capacity, s.Load.IndexFiles, s.Load.Neighbours, s.LastSeenMS/1000)
	}
	return tw.Flush()
}
