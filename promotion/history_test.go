package promotion

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestHistoryPersists(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

	// Session 1: 2 h, clean shutdown.
	h := LoadHistory(dir, t0, nil)
	if h.AvgSession() != 0 || h.Uptime(t0.Add(time.Minute)) != time.Minute {
		t.Fatalf("fresh history: avg %v uptime %v", h.AvgSession(), h.Uptime(t0.Add(time.Minute)))
	}
	h.End(t0.Add(2 * time.Hour))
	if err := h.Save(); err != nil {
		t.Fatal(err)
	}

	// Session 2: starts later, touched at +30 min and saved, then the
	// process is killed (no End).
	t1 := t0.Add(3 * time.Hour)
	h = LoadHistory(dir, t1, nil)
	if got := h.AvgSession(); got != 2*time.Hour {
		t.Fatalf("average after one 2 h session = %v", got)
	}
	h.Touch(t1.Add(30 * time.Minute))
	if err := h.Save(); err != nil {
		t.Fatal(err)
	}

	// Session 3: the killed session counts up to its last save.
	t2 := t1.Add(5 * time.Hour)
	h = LoadHistory(dir, t2, nil)
	ss := h.Sessions()
	if len(ss) != 2 || ss[1].Len() != 30*time.Minute {
		t.Fatalf("sessions = %+v, want 2 h and a killed 30 min one", ss)
	}
	if got := h.AvgSession(); got != 75*time.Minute {
		t.Errorf("average = %v, want 75 min", got)
	}
	if got := h.Uptime(t2.Add(time.Hour)); got != time.Hour {
		t.Errorf("uptime = %v", got)
	}

	// No temporary files are left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != HistoryFile {
		t.Errorf("directory holds %v, want only %s", ents, HistoryFile)
	}
}

func TestHistoryBounded(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for range maxSessions + 10 {
		h := LoadHistory(dir, now, nil)
		now = now.Add(time.Minute)
		h.End(now)
		if err := h.Save(); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Minute)
	}
	if n := len(LoadHistory(dir, now, nil).Sessions()); n != maxSessions {
		t.Errorf("%d sessions kept, want %d", n, maxSessions)
	}
}

// TestHistoryCorrupt: a corrupt, truncated, foreign or nonsensical file
// means a fresh history and a warning, never an error; the next save
// replaces it.
func TestHistoryCorrupt(t *testing.T) {
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	for name, content := range map[string]string{
		"garbage":   "\x00\x01 not json",
		"truncated": `{"version":1,"sessions":[{"start":"2025-01-01T00:00:00Z","e`,
		"version":   `{"version":99,"sessions":[]}`,
		"empty":     ``,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, HistoryFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		core, logs := observer.New(zap.WarnLevel)
		h := LoadHistory(dir, now, zap.New(core))
		if len(h.Sessions()) != 0 || h.AvgSession() != 0 {
			t.Errorf("%s: sessions %v from a corrupt file", name, h.Sessions())
		}
		if logs.Len() != 1 || !strings.Contains(logs.All()[0].Message, "starting afresh") {
			t.Errorf("%s: logs %v, want one warning", name, logs.All())
		}
		h.End(now.Add(time.Hour))
		if err := h.Save(); err != nil {
			t.Fatalf("%s: save over a corrupt file: %v", name, err)
		}
		if got := LoadHistory(dir, now.Add(2*time.Hour), nil).AvgSession(); got != time.Hour {
			t.Errorf("%s: after rewrite average = %v", name, got)
		}
	}

	// Sessions that make no sense (end before start, in the future, zero)
	// are dropped one by one, the rest kept.
	dir := t.TempDir()
	content := `{"version":1,"sessions":[
		{"start":"2025-01-01T00:00:00Z","end":"2025-01-01T01:00:00Z"},
		{"start":"2025-01-02T00:00:00Z","end":"2025-01-01T00:00:00Z"},
		{"start":"2025-01-01T00:00:00Z","end":"2099-01-01T00:00:00Z"},
		{"start":"0001-01-01T00:00:00Z","end":"0001-01-01T00:00:00Z"}]}`
	if err := os.WriteFile(filepath.Join(dir, HistoryFile), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if ss := LoadHistory(dir, now, nil).Sessions(); len(ss) != 1 || ss[0].Len() != time.Hour {
		t.Errorf("sessions = %+v, want the one valid", ss)
	}
}

func TestHistorySaveFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	h := LoadHistory(dir, time.Now(), nil)
	if err := h.Save(); err == nil || !strings.Contains(err.Error(), "writable") {
		t.Errorf("save into a missing directory: %v", err)
	}
	if err := LoadHistory("", time.Now(), nil).Save(); err != nil {
		t.Errorf("in-memory history: %v", err)
	}
}
