package testkit

import (
	"encoding/json"
	"strings"
	"testing"
)

// Records decodes JSON log output, one object a line (blank lines are
// skipped), as slog's JSON handler writes it; it fails tb on a line that
// is not a JSON object. When match is not nil only the records that hold
// every key of match with its value are returned (numbers compare as
// float64, as JSON decodes them).
func Records(tb testing.TB, text string, match map[string]any) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			tb.Fatalf("log line is not a JSON object: %q", line)
		}
		if matches(m, match) {
			out = append(out, m)
		}
	}
	return out
}

func matches(m, match map[string]any) bool {
	for k, v := range match {
		if m[k] != v {
			return false
		}
	}
	return true
}
