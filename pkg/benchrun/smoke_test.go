package benchrun

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestSmokeRealSystem runs the latency scenarios briefly through the real
// in-process system.
func TestSmokeRealSystem(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := Config{Scenarios: []string{"direct", "tunnel"}, Warmup: 100 * time.Millisecond, Duration: 300 * time.Millisecond}
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := rep.Write(dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []Result
	if err := json.Unmarshal(data, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("rows: got %d, want 4:\n%s", len(rows), data)
	}
	for _, r := range rows {
		if r.Requests <= 0 || r.Errors != 0 {
			t.Errorf("%s c=%d: got %d requests, %d errors; want > 0 and 0", r.Scenario, r.Concurrency, r.Requests, r.Errors)
		}
		if r.Scenario == "tunnel" && (r.AddedP50 == nil || r.RatioToDirect == nil) {
			t.Errorf("tunnel c=%d: no comparison with direct", r.Concurrency)
		}
	}
	checkGoroutines(t, before)
}

// checkGoroutines fails if goroutines started by the test are still
// running a few seconds after it has stopped everything.
func checkGoroutines(tb testing.TB, before int) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			tb.Errorf("goroutines leaked: got %d, want at most %d\n%s", runtime.NumGoroutine(), before+2, buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}

func TestRunRejectsUnknownScenario(t *testing.T) {
	_, err := Run(t.Context(), Config{Scenarios: []string{"direct", "warp"}, Duration: time.Second})
	if !errors.Is(err, ErrUnknownScenario) || !strings.Contains(err.Error(), "known: direct, tunnel") {
		t.Fatalf("got %v, want %v listing the known scenarios", err, ErrUnknownScenario)
	}
}
