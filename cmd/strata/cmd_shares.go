package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-p2p/strata/proto"
)

func init() { extraCommands = append(extraCommands, newSharesCmd) }

func newSharesCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "shares",
		Short: "List the files the running node shares, with their content IDs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			resp, err := api.get("/v1/shares", nil, 10*time.Second)
			if err != nil {
				return err
			}
			var files []proto.FileEntry
			if err := decodeAPI(resp, &files); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), files)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSIZE\tMEDIA\tCONTENT ID")
			for _, f := range files {
				media := f.Media.String()
				if f.Bitrate > 0 {
					media += fmt.Sprintf(" %dk %ds", f.Bitrate, f.Duration)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Name, humanBytes(f.Size), media, f.ContentID)
			}
			fmt.Fprintf(tw, "%d files\n", len(files))
			return tw.Flush()
		},
	}
	addSettingFlags(cmd.Flags(), "api", "api-token")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
