package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-p2p/strata/bootstrap"
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
	fmt.Fprintf(tw, "reachability\t%s%s\n", st.Reach.Reachable, countsNote(", sources via", st.Reach.Via))
	_ = tw.Flush()
	printPromotion(w, st)
	if s := st.Supernode; s != nil {
		fmt.Fprintf(w, "\nsupernode role: %d/%d leaves, %d neighbours, %d files indexed (%s), %d queries remembered\n",
			len(s.Leaves), s.Capacity, len(s.Neighbours), s.IndexFiles, humanBytes(uint64(s.IndexBytes)), s.Routes)
		fmt.Fprintf(w, "queries: %d from leaves, %d from the mesh, %d forwarded, %d answered, %d hits sent\n",
			s.Stats.QueriesFromLeaves, s.Stats.QueriesFromMesh, s.Stats.QueriesForwarded, s.Stats.QueriesAnswered, s.Stats.HitsSent)
		r := s.Reach
		fmt.Fprintf(w, "relay: %d/%d sessions, %s relayed, limits %s/s a session, %s/s in all, %s a session, %s an hour%s%s\n",
			r.RelaySessions, r.Limits.MaxRelaySessions, humanBytes(r.RelayedBytes), humanBytes(uint64(r.Limits.RelaySessionRate)),
			humanBytes(uint64(r.Limits.RelayTotalRate)), humanBytes(uint64(r.Limits.RelaySessionBytes)),
			humanBytes(uint64(r.Limits.RelayHourBytes)), countsNote("; requests", r.Requests), countsNote("; refused", r.Refused))
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

// printPromotion shows the promotion engine: the measurements, the demand,
// the recent decisions with their reasons.
func printPromotion(w io.Writer, st *node.Status) {
	p := st.Promotion
	if p == nil {
		return
	}
	c := p.Policy.Capacity
	fmt.Fprintf(w, "\npromotion: %s, score %.0f, %d role changes", p.Reachable, p.Policy.Score, p.Policy.Changes)
	if !p.Policy.HoldUntil.IsZero() && time.Now().Before(p.Policy.HoldUntil) {
		fmt.Fprintf(w, ", no change before %s", p.Policy.HoldUntil.Format(time.TimeOnly))
	}
	fmt.Fprintln(w)
	if p.Policy.Measured {
		fmt.Fprintf(w, "measured: up %s/s, down %s/s, %.3g cores, %s memory, load %.2f per CPU, %.0f index lookups/s, uptime %s\n",
			humanBytes(uint64(c.UpBps)), humanBytes(uint64(c.DownBps)), c.Cores, humanBytes(c.MemBytes), c.Load1,
			c.IndexOpsPerSec, c.Uptime.Round(time.Second))
	}
	d := p.Demand
	fmt.Fprintf(w, "demand: %s (bootstrap %s: %d supernodes for %d leaves, %d wanted)\n", d.Ask, p.Bootstrap, d.Supernodes, d.Leaves, d.Need)
	if p.CheckInError != "" {
		fmt.Fprintf(w, "check-in failing: %s\n", p.CheckInError)
	}
	decs := p.Policy.Decisions
	if len(decs) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nDECIDED\tROLE\tWANT\tDID\tREASON\tTIMES\tFAILED GATES")
	for _, r := range decs[max(0, len(decs)-10):] {
		var failed []string
		for _, g := range r.Gates {
			if !g.OK {
				failed = append(failed, g.Name+" "+g.Have+" (want "+g.Want+")")
			}
		}
		reason := r.Reason
		if r.Blocked != "" {
			reason += " [waiting: " + r.Blocked + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.At.Format(time.TimeOnly), r.Role, r.Want, r.Action, reason,
			r.Repeats, strings.Join(failed, "; "))
	}
	_ = tw.Flush()
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
	if err := tw.Flush(); err != nil {
		return err
	}
	var ps struct {
		Promotion *bootstrap.PromotionStatus `json:"promotion"`
	}
	if err := json.Unmarshal(body, &ps); err != nil || ps.Promotion == nil {
		return nil
	}
	pl := ps.Promotion.Plan
	fmt.Fprintf(w, "\npromotion: %d leaves, %d supernodes, %d wanted (%g leaves each, %g%% headroom): %s\n",
		pl.Leaves, pl.Supernodes, pl.Need, ps.Promotion.LeavesPerSupernode, 100*ps.Promotion.Headroom, pl.Reason)
	if len(ps.Promotion.Nodes) == 0 {
		return nil
	}
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nNODE\tROLE\tDIAL-BACK\tUP (PROBE)\tDOWN (PROBE)\tKNOWN FOR\tASKED")
	for _, n := range ps.Promotion.Nodes {
		role := n.Role.String()
		if !n.Auto {
			role += " (pinned)"
		} else if n.Declining {
			role += " (declining)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s/s\t%s/s\t%s\t%s\n", n.PeerID, role, n.Reachable, humanBytes(uint64(n.UpBps)),
			humanBytes(uint64(n.DownBps)), time.Duration(n.SeenS*float64(time.Second)).Round(time.Second), n.Ask)
	}
	return tw.Flush()
}

// countsNote prints counters as "<label> a 1, b 2" in key order, or nothing.
func countsNote(label string, m map[string]uint64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(label)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %s %d", k, m[k])
	}
	return b.String()
}
