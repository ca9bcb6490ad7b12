package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/strata-p2p/strata/node"
)

// setting is one configurable value. Every setting is defined once here, with
// its default; commands pick the ones they use by name.
type setting struct {
	name  string
	def   any // string, []string, int, float64, bool or time.Duration
	usage string
}

var settings = []setting{
	{"log-format", "console", "log format: console (for people) or json (for machines)"},
	{"log-level", "info", "log level: debug, info, warn or error"},
	{"state-dir", defaultStateDir(), "directory for the node's identity key, caches and partial downloads"},
	{"listen", "0.0.0.0:7400", "UDP address (host:port) to accept QUIC connections on; port 0 picks a free one"},
	{"api", "127.0.0.1:7500", "address of the local HTTP control API; port 0 picks a free one"},
	{"bootstrap", []string{"127.0.0.1:7300"}, "bootstrap server addresses (host:port), comma-separated"},
	{"share", []string{}, "directory to share (repeat for several)"},
	{"downloads", defaultDownloadsDir(), "directory finished downloads are saved in"},
	{"role", "auto", "role: auto (the network decides), leaf, or supernode"},
	{"supernodes", node.DefaultSupernodes, "supernodes a leaf stays attached to at once (1 to 5): its files are indexed at each and searches fail over between them"},
	{"max-leaves", 100, "leaves a supernode accepts before redirecting newcomers"},
	{"mesh-degree", 4, "neighbour supernodes each supernode keeps"},
	{"heartbeat", 1 * time.Second, "how often a supernode reports its load to the bootstrap server"},
	{"rescan", 2 * time.Second, "how often share folders are checked for changes"},
	{"upload-slots", 4, "uploads served at once; more requesters wait in a queue and are told their place"},
	{"max-upload-rate", "", "cap on upload bandwidth, e.g. 20KB, 5MB, 100Mbit (per second; empty: no cap)"},
	{"relay-max-sessions", 16, "relay sessions a supernode carries at once for its unreachable leaves"},
	{"relay-max-rate", "1MB", "cap on one relay session's rate (both directions), e.g. 512KB, 10Mbit (per second)"},
	{"relay-total-rate", "8MB", "cap on the rate of all relay sessions of a supernode together (per second)"},
	{"relay-session-bytes", "256MB", "bytes one relay session may carry before the supernode ends it, e.g. 64MB, 1GB"},
	{"relay-hour-bytes", "10GB", "bytes a supernode relays in all in one hour; beyond it relay requests are refused"},
	{"connect-rate", 1.0, "push, hole-punch and relay requests per second a supernode takes from one leaf, or from one address for peers that are not its leaves (burst: 10)"},
	{"check-in", time.Duration(0), "how often nodes check in for promotion (0: the bootstrap's default, 10s)"},
	{"leaves-per-supernode", 0.0, "target leaves per supernode the promotion planner keeps (0: the default, 30; KaZaA ran about 100)"},
	{"headroom", 0.0, "spare supernode capacity kept on top of the target ratio, e.g. 0.25 for 25% (0: the default, 0.25; negative: none)"},
	{"promotion-hold", time.Duration(0), "least time between two role changes of a node (0: the default, 30m)"},
	{"promotion-confidence", 0, "consecutive decisions that must want a role change before the node acts (0: the default, 2)"},
	{"promotion-min-cores", 0.0, "least CPU cores available to the process for it to become a supernode (0: the default, 1)"},
	{"promotion-max-load", 0.0, "highest 1-minute load per CPU at which a node still becomes a supernode (0: the default, 2; negative: no load gate)"},
	{"bench-files", 0, "files in the corpus of the index benchmark a node runs to measure its CPU for promotion (0: the default, 20000)"},
	{"probe-every", time.Duration(0), "least time between two bandwidth probes, run when no transfer measured the rates (0: the default, 10m)"},
	{"promotion-request-rate", 0.0, "promotion requests (new nodes checking in, probes) per second one address may make (0: the default, 0.2)"},
	{"promotion-request-burst", 0, "promotion requests one address may make at once (0: the default, 5)"},
	{"api-token", "", "bearer token the control API requires (at least 16 characters); when empty, an API that is not on loopback generates one into <state-dir>/api-token. Clients send it as Authorization: Bearer"},
}

func defaultStateDir() string {
	if d, err := os.UserConfigDir(); err == nil {
		return d + "/strata"
	}
	return ".strata"
}

func defaultDownloadsDir() string {
	if d, err := os.UserHomeDir(); err == nil {
		return d + "/Downloads/strata"
	}
	return "downloads"
}

func lookupSetting(name string) setting {
	for _, s := range settings {
		if s.name == name {
			return s
		}
	}
	panic("strata: unknown setting " + name) // programming error, caught by tests
}

// envName is the environment variable for a setting.
func envName(name string) string {
	return "STRATA_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// addSettingFlags defines flags for the named settings on cmd.
func addSettingFlags(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		s := lookupSetting(n)
		switch d := s.def.(type) {
		case string:
			fs.String(n, d, s.usage)
		case []string:
			fs.StringSlice(n, d, s.usage)
		case int:
			fs.Int(n, d, s.usage)
		case bool:
			fs.Bool(n, d, s.usage)
		case float64:
			fs.Float64(n, d, s.usage)
		case time.Duration:
			fs.Duration(n, d, s.usage)
		}
	}
}

func addGlobalFlags(root *cobra.Command) {
	root.PersistentFlags().String("config", "", "YAML config `FILE` of settings keyed by flag name (e.g. listen: 0.0.0.0:7400)")
	addSettingFlags(root.PersistentFlags(), "log-format", "log-level")
}

// config is the effective configuration of one command invocation.
type config struct {
	v     *viper.Viper
	cmd   *cobra.Command
	names []string
}

// loadConfig resolves every setting cmd has a flag for: flag, then
// environment, then config file, then default.
func loadConfig(cmd *cobra.Command) (*config, error) {
	v := viper.New()
	v.SetEnvPrefix("STRATA")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	c := &config{v: v, cmd: cmd}
	var bindErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" || f.Name == "help" {
			return
		}
		for _, s := range settings {
			if s.name == f.Name {
				if err := v.BindPFlag(f.Name, f); err != nil {
					bindErr = err
				}
				c.names = append(c.names, f.Name)
			}
		}
	})
	if bindErr != nil {
		return nil, bindErr
	}
	if file, _ := cmd.Flags().GetString("config"); file != "" {
		v.SetConfigFile(file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config file %s: %w (check the path and that it is YAML)", file, err)
		}
		known := map[string]bool{}
		for _, s := range settings {
			known[s.name] = true
		}
		for _, k := range v.AllKeys() {
			if !known[k] {
				return nil, fmt.Errorf("config file %s: unknown setting %q (see `strata config print` for the names)", file, k)
			}
		}
	}
	sort.Strings(c.names)
	return c, nil
}

// source says where the effective value of name came from.
func (c *config) source(name string) string {
	if f := c.cmd.Flags().Lookup(name); f != nil && f.Changed {
		return "flag"
	}
	if _, ok := os.LookupEnv(envName(name)); ok {
		return "env " + envName(name)
	}
	if c.v.InConfig(name) {
		return "file"
	}
	return "default"
}

func (c *config) String(name string) string { return c.v.GetString(name) }
func (c *config) Int(name string) int       { return c.v.GetInt(name) }
func (c *config) Bool(name string) bool     { return c.v.GetBool(name) }
func (c *config) Float(name string) float64 { return c.v.GetFloat64(name) }
func (c *config) Duration(name string) time.Duration {
	return c.v.GetDuration(name)
}

// Strings splits comma-separated values from any source.
func (c *config) Strings(name string) []string {
	var out []string
	for _, s := range c.v.GetStringSlice(name) {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

type settingValue struct {
	Name   string `json:"name"`
	Value  any    `json:"value"`
	Source string `json:"source"`
	Env    string `json:"env"`
}

func (c *config) values() []settingValue {
	var out []settingValue
	for _, n := range c.names {
		var val any = c.v.Get(n)
		if _, ok := lookupSetting(n).def.([]string); ok {
			val = c.Strings(n)
		}
		if d, ok := lookupSetting(n).def.(time.Duration); ok {
			_ = d
			val = c.Duration(n).String()
		}
		if n == "api-token" && c.String(n) != "" {
			val = "(set, hidden)"
		}
		out = append(out, settingValue{Name: n, Value: val, Source: c.source(n), Env: envName(n)})
	}
	return out
}

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Inspect configuration"}
	var asJSON bool
	print := &cobra.Command{
		Use:   "print",
		Short: "Show the effective configuration of a node and where each value came from",
		Long: `Show every node setting's effective value and its source: flag, env (the
STRATA_ variable), file (--config), or default. Pass the same flags, environment
and config file you would pass to "strata node".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), c.values())
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SETTING\tVALUE\tSOURCE")
			for _, s := range c.values() {
				fmt.Fprintf(tw, "%s\t%v\t%s\n", s.Name, s.Value, s.Source)
			}
			return tw.Flush()
		},
	}
	names := make([]string, 0, len(settings))
	for _, s := range settings {
		if s.name != "log-format" && s.name != "log-level" {
			names = append(names, s.name)
		}
	}
	addSettingFlags(print.Flags(), names...)
	print.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	cmd.AddCommand(print)
	return cmd
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseRate reads a bandwidth such as "20KB", "5MB", "1.5MiB", "100Mbit" or
// "100kbit" as bytes per second. "" and "0" mean no cap.
func parseRate(s string) (int64, error) {
	t := strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "/s"), "ps"))
	if t == "" || t == "0" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   float64
	}{
		{"gbit", 1e9 / 8}, {"mbit", 1e6 / 8}, {"kbit", 1e3 / 8}, {"bit", 1.0 / 8},
		{"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10},
		{"gb", 1e9}, {"mb", 1e6}, {"kb", 1e3}, {"b", 1},
	}
	lower := strings.ToLower(t)
	for _, u := range units {
		if strings.HasSuffix(lower, u.suffix) {
			v, err := strconv.ParseFloat(strings.TrimSpace(lower[:len(lower)-len(u.suffix)]), 64)
			if err != nil || v < 0 {
				break
			}
			return int64(v * u.mult), nil
		}
	}
	return 0, fmt.Errorf("rate %q: want a number and a unit, e.g. 20KB, 5MB, 1.5MiB or 100Mbit", s)
}
