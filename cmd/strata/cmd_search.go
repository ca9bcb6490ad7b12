package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-p2p/strata/node"
	"github.com/strata-p2p/strata/proto"
)

func init() { extraCommands = append(extraCommands, newSearchCmd) }

func newSearchCmd() *cobra.Command {
	var asJSON bool
	var max, getN int
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "search [flags] QUERY...",
		Short: "Search the network through the running node",
		Long: `Search the network through the running node's supernode. All words must match
the file name or its tags (case and accents ignored). Filters may be mixed in:
  size>10MB  bitrate>=128  freq=44100  duration<300  ext:mp3  type:audio
Hits print as they arrive; the search ends after --max-results hits or --timeout.
With --json each hit is one JSON object per line. --get N downloads hit N
(as numbered in the table) when the search ends.`,
		Example: `  strata search hey jude bitrate>=128
  strata search --json --max-results 5 beatles ext:mp3`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			q := url.Values{"q": {strings.Join(args, " ")}, "max": {strconv.Itoa(max)}, "timeout": {timeout.String()}}
			resp, err := api.get("/v1/search", q, timeout+10*time.Second)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			n := 0
			var final node.SearchEvent
			var got []proto.Hit
			err = lines(resp.Body, func(b []byte) error {
				var ev node.SearchEvent
				if err := json.Unmarshal(b, &ev); err != nil {
					return fmt.Errorf("bad answer from the node: %v", err)
				}
				if ev.Type == "done" {
					final = ev
					return nil
				}
				if ev.Hit == nil {
					return nil
				}
				n++
				got = append(got, *ev.Hit)
				if asJSON {
					h, _ := json.Marshal(ev.Hit)
					fmt.Fprintln(out, string(h))
					return nil
				}
				if n == 1 {
					fmt.Fprintln(tw, "#\tNAME\tSIZE\tMEDIA\tHOLDER\tHOPS\tCONTENT ID")
				}
				h := ev.Hit
				media := h.Entry.Media.String()
				if h.Entry.Bitrate > 0 {
					media += fmt.Sprintf(" %dk", h.Entry.Bitrate)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", n, h.Entry.Name, humanBytes(h.Entry.Size), media,
					h.Holder.ID.Short(), h.Hops, h.Entry.ContentID.Short())
				return tw.Flush()
			})
			if err != nil {
				return err
			}
			if final.Error != "" {
				return fmt.Errorf("search ended early: %s", final.Error)
			}
			if !asJSON {
				_ = tw.Flush()
				fmt.Fprintf(cmd.ErrOrStderr(), "%d hits in %.0f ms\n", n, final.ElapsedMS)
			}
			if getN > 0 {
				if getN > len(got) {
					return fmt.Errorf("--get %d: the search found only %d hits", getN, len(got))
				}
				h := got[getN-1]
				return runGet(cmd, api, h.Entry.ContentID, h.Entry.Name, "", asJSON)
			}
			return nil
		},
	}
	addSettingFlags(cmd.Flags(), "api", "api-token")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per hit")
	cmd.Flags().IntVar(&max, "max-results", 100, "stop after this many hits")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "stop after this long")
	cmd.Flags().IntVar(&getN, "get", 0, "download hit number N when the search ends")
	return cmd
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
