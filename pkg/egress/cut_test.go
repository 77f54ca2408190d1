package egress

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern/postern/pkg/testkit"
)

// TestCutResponseIsLoggedAndCounted checks that a backend response cut
// mid-body still gets its log line, marked truncated, and is counted, and
// that the connector cuts its own answer so the mesh sees it.
func TestCutResponseIsLoggedAndCounted(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Write(make([]byte, 20000))
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // the backend dies mid-body
	}))
	defer backend.Close()
	var logs testkit.SyncBuffer
	reg := prometheus.NewRegistry()
	resp := serveTunnel(t, Config{AllowList: loopback(t), Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Registerer: reg}, backend.URL, nil)
	n, err := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || err == nil || n >= 100000 {
		t.Fatalf("got %d, %d bytes, %v; want a 200 cut short with an error", resp.StatusCode, n, err)
	}
	// The line is written before the handler's panic cuts the connection,
	// so it is there by the time the client sees the cut.
	lines := testkit.Records(t, logs.String(), map[string]any{"msg": "request"})
	if len(lines) != 1 {
		t.Fatalf("got %d request lines, want 1", len(lines))
	}
	l := lines[0]
	if l["truncated"] != true || l["truncated_by"] != "backend" || !strings.Contains(l["error"].(string), "response cut") || l["status"] != 200.0 {
		t.Errorf("request line: got %v, want truncated by the backend with status 200", l)
	}
	if got := cutCount(t, reg, "backend"); got != 1 {
		t.Errorf("postern_connector_responses_truncated_total{side=backend}: got %v, want 1", got)
	}
}

// cutCount returns postern_connector_responses_truncated_total{side} of
// reg; zero when absent.
func cutCount(t *testing.T, reg *prometheus.Registry, side string) float64 {
	t.Helper()
	return testkit.MetricValue(t, reg, "postern_connector_responses_truncated_total", "side", side)
}
