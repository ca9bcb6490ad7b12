package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-p2p/strata/internal/atomicfile"
	"github.com/strata-p2p/strata/internal/transfer"
	"github.com/strata-p2p/strata/node"
	"github.com/strata-p2p/strata/proto"
)

func init() { extraCommands = append(extraCommands, newGetCmd, newDownloadsCmd) }

func newGetCmd() *cobra.Command {
	var asJSON bool
	var to, name string
	cmd := &cobra.Command{
		Use:   "get [flags] CONTENT-ID",
		Short: "Download a file by content ID through the running node",
		Long: `Ask the running node to download the file with this content ID (64 hex
digits, as "strata search" shows them) from every holder it can find, verifying
each piece. A progress bar shows bytes, rate, time left and sources on a
terminal; plain lines otherwise. The finished file is in the node's downloads
folder (and shared from there); --to copies it to another folder too.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cid, err := proto.ParseContentID(args[0])
			if err != nil {
				return fmt.Errorf("%v (copy the content ID from `strata search`)", err)
			}
			api, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			return runGet(cmd, api, cid, name, to, asJSON)
		},
	}
	addSettingFlags(cmd.Flags(), "api", "api-token")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print progress and the result as JSON lines")
	cmd.Flags().StringVar(&to, "to", "", "also copy the finished file into this folder")
	cmd.Flags().StringVar(&name, "name", "", "file name to save as (default: the name holders use)")
	return cmd
}

// runGet starts a download and follows it to the end.
func runGet(cmd *cobra.Command, api *apiClient, cid proto.ContentID, name, to string, asJSON bool) error {
	body, _ := json.Marshal(node.DownloadRequest{ContentID: cid.String(), Name: name})
	resp, err := api.hc.Post(api.base+"/v1/downloads", "application/json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("cannot reach the control API at %s (%v); is `strata node` running, and is --api right?", api.base, err)
	}
	var d transfer.DownloadStatus
	if err := decodeAPI(resp, &d); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	tty := isTerminal(out)
	lastLine := time.Time{}
	for {
		switch {
		case asJSON:
			b, _ := json.Marshal(d)
			fmt.Fprintln(out, string(b))
		case tty:
			fmt.Fprintf(out, "\r\033[K%s", progressLine(&d))
		case time.Since(lastLine) > 2*time.Second || isFinal(d.State):
			fmt.Fprintln(out, progressLine(&d))
			lastLine = time.Now()
		}
		if isFinal(d.State) {
			break
		}
		time.Sleep(200 * time.Millisecond)
		r, err := api.get("/v1/downloads/"+d.ID, nil, 5*time.Second)
		if err != nil {
			return err
		}
		if err := decodeAPI(r, &d); err != nil {
			return err
		}
	}
	if tty && !asJSON {
		fmt.Fprintln(out)
	}
	if d.State != "done" {
		msg := d.Error
		if msg == "" {
			msg = "download " + d.State
		}
		return &exitError{code: 2, err: fmt.Errorf("%s: %s", cid.Short(), msg)}
	}
	if to != "" {
		dst, err := copyInto(d.Path, to)
		if err != nil {
			return fmt.Errorf("downloaded to %s, but copying to %s failed: %w", d.Path, to, err)
		}
		d.Path = dst
	}
	if !asJSON {
		fmt.Fprintf(out, "saved %s\n", d.Path)
	}
	return nil
}

func isFinal(state string) bool {
	return state == "done" || state == "failed" || state == "cancelled"
}

func progressLine(d *transfer.DownloadStatus) string {
	pct := 0.0
	if d.Size > 0 {
		pct = 100 * float64(d.Done) / float64(d.Size)
	}
	width := 24
	fill := int(pct / 100 * float64(width))
	bar := strings.Repeat("#", fill) + strings.Repeat(".", width-fill)
	active := 0
	for _, s := range d.Sources {
		if s.State == "active" {
			active++
		}
	}
	eta := "-"
	if d.ETASeconds > 0 {
		eta = (time.Duration(d.ETASeconds) * time.Second).String()
	}
	relay := ""
	if d.Relayed {
		relay = " (" + relayNote(*d) + ")"
	}
	return fmt.Sprintf("%-10s [%s] %5.1f%% %s/%s %s/s ETA %s, %d/%d sources%s  %s",
		d.State, bar, pct, humanBytes(d.Done), humanBytes(d.Size), humanBytes(uint64(d.RateBps)), eta, active, len(d.Sources), relay, d.Name)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func decodeAPI(resp *http.Response, v any) error {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s", e.Error)
		}
		return fmt.Errorf("%s", resp.Status)
	}
	return json.Unmarshal(b, v)
}

// copyInto copies (or hard-links) src into dir, keeping its name.
func copyInto(src, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.Link(src, dst); err == nil {
		return dst, nil
	}
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	err = atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
	return dst, err
}

func newDownloadsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "downloads",
		Short: "List downloads in progress and finished, with state and speed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			resp, err := api.get("/v1/downloads", nil, 5*time.Second)
			if err != nil {
				return err
			}
			var list []transfer.DownloadStatus
			if err := decodeAPI(resp, &list); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), list)
			}
			if len(list) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no downloads")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tDONE\tSIZE\tRATE\tSOURCES\tNAME")
			for _, d := range list {
				src := fmt.Sprintf("%d", len(d.Sources))
				if d.Relayed {
					src += " " + relayNote(d)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s/s\t%s\t%s\n", d.ID, d.State, humanBytes(d.Done), humanBytes(d.Size),
					humanBytes(uint64(d.RateBps)), src, d.Name)
			}
			return tw.Flush()
		},
	}
	addSettingFlags(cmd.Flags(), "api", "api-token")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	cancel := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a download and delete its partial data",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			req, _ := http.NewRequest(http.MethodDelete, api.base+"/v1/downloads/"+args[0], nil)
			resp, err := api.hc.Do(req)
			if err != nil {
				return fmt.Errorf("cannot reach the control API at %s: %v", api.base, err)
			}
			var ok map[string]string
			if err := decodeAPI(resp, &ok); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cancelled %s\n", args[0])
			return nil
		},
	}
	addSettingFlags(cancel.Flags(), "api", "api-token")
	cmd.AddCommand(cancel)
	return cmd
}

// relayNote says that a download runs through a supernode's relay, and at
// what limits.
func relayNote(d transfer.DownloadStatus) string {
	for _, s := range d.Sources {
		if s.Path.Via == "relay" {
			return fmt.Sprintf("relayed, limit %s/s, %s a session", humanBytes(s.Path.MaxBps), humanBytes(s.Path.MaxBytes))
		}
	}
	return "relayed"
}
