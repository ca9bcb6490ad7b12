package main

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/strata-p2p/strata/proto"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "strata",
		Short: "Strata: a two-tier peer-to-peer overlay (leaves and supernodes) over QUIC",
		Long: `Strata is a two-tier peer-to-peer overlay in the line of KaZaA and Skype.
Ordinary peers get a supernode's address from a bootstrap server, upload the
list of files they share, and send their searches to that supernode;
supernodes answer for their leaves and forward queries among themselves.

Every setting can come from a flag, an environment variable (STRATA_ and the
flag name in capitals, dashes as underscores: --listen is STRATA_LISTEN), or a
YAML config file (--config FILE), in that order of precedence, over the
built-in default. "strata config print" shows the effective values and where
each came from.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	addGlobalFlags(root)
	root.AddCommand(newVersionCmd(), newConfigCmd())
	for _, c := range extraCommands {
		root.AddCommand(c())
	}
	return root
}

// extraCommands lets each subcommand's file register itself.
var extraCommands []func() *cobra.Command

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of strata and of its protocol",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := map[string]any{
				"version":      version,
				"protocol_min": proto.MinVersion,
				"protocol_max": proto.MaxVersion,
				"alpn":         proto.ALPN,
			}
			if bi, ok := debug.ReadBuildInfo(); ok {
				info["go"] = bi.GoVersion
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), info)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "strata %s (protocol %d-%d, %s, %s)\n",
				version, proto.MinVersion, proto.MaxVersion, proto.ALPN, info["go"])
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
