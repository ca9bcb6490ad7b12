package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "strata.yaml")
	if err := os.WriteFile(file, []byte("listen: 10.0.0.1:1\napi: 10.0.0.1:2\nrole: leaf\nmax-leaves: 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STRATA_API", "10.0.0.2:2")
	t.Setenv("STRATA_ROLE", "supernode")
	out, stderr, code := runCmd(t, "config", "print", "--json", "--config", file, "--role", "leaf")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var vals []settingValue
	if err := json.Unmarshal([]byte(out), &vals); err != nil {
		t.Fatal(err)
	}
	got := map[string]settingValue{}
	for _, v := range vals {
		got[v.Name] = v
	}
	want := map[string][2]string{
		"listen":     {"10.0.0.1:1", "file"},           // file over default
		"api":        {"10.0.0.2:2", "env STRATA_API"}, // env over file
		"role":       {"leaf", "flag"},                 // flag over env and file
		"max-leaves": {"7", "file"},
		"log-format": {"console", "default"},
	}
	for name, w := range want {
		v := got[name]
		if s := strings.Trim(strings.TrimSpace(jsonString(v.Value)), `"`); s != w[0] || v.Source != w[1] {
			t.Errorf("%s = %v from %q, want %s from %q", name, v.Value, v.Source, w[0], w[1])
		}
	}
}

func jsonString(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestConfigFileErrors(t *testing.T) {
	_, stderr, code := runCmd(t, "config", "print", "--config", "/nonexistent/strata.yaml")
	if code == 0 || !strings.Contains(stderr, "/nonexistent/strata.yaml") {
		t.Fatalf("missing file: exit %d, %q", code, stderr)
	}
	file := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(file, []byte("lisen: 1.2.3.4:5\n"), 0o600)
	_, stderr, code = runCmd(t, "config", "print", "--config", file)
	if code == 0 || !strings.Contains(stderr, `unknown setting "lisen"`) {
		t.Fatalf("misspelt setting: exit %d, %q", code, stderr)
	}
}

func TestEverySettingHasAFlagType(t *testing.T) {
	for _, s := range settings {
		switch s.def.(type) {
		case string, []string, int, float64, bool, interface{ String() string }:
		default:
			t.Errorf("setting %s has default of unsupported type %T", s.name, s.def)
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "0": 0, "20KB": 20_000, "5MB": 5_000_000, "1.5MiB": 1572864,
		"100Mbit": 12_500_000, "64kbit/s": 8000, "50 MB": 50_000_000} {
		got, err := parseRate(in)
		if err != nil || got != want {
			t.Errorf("parseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"fast", "-5MB", "5 parsecs"} {
		if _, err := parseRate(bad); err == nil {
			t.Errorf("parseRate(%q) accepted", bad)
		}
	}
}
