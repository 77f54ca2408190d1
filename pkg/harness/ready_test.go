package harness

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// ready reports whether mesh node i's /readyz answers 200.
func ready(h *Harness, i int) bool {
	rec := httptest.NewRecorder()
	h.Meshes()[i].Node.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	return rec.Code == http.StatusOK
}

// TestMeshDrainUnderSteadyLoad stops a mesh node while clients keep
// sending (as when no load balancer takes it out): /readyz turns 503 at
// once, the node stops accepting after the drain delay, and the drain ends
// when the requests in flight end, not at the drain timeout. No request
// gets an error answer or a cut body; the only failures allowed are
// connections the closed listener refused.
func TestMeshDrainUnderSteadyLoad(t *testing.T) {
	const delay, timeout = 300 * time.Millisecond, 20 * time.Second
	var logs SyncBuffer
	h := start(t, Options{Connectors: 2, DrainDelay: delay, DrainTimeout: timeout, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err := WaitFor(t.Context(), 10*time.Second, func() bool { return ready(h, 0) }); err != nil {
		t.Fatal("the node never turned ready")
	}
	h1 := h.MeshTransport(0)
	h1.ForceAttemptHTTP2 = false
	loads := []*mixedLoad{startMixedLoad(t, &http.Client{Transport: h1}, h.AppURL(0, ""), 4),
		startMixedLoad(t, h.MeshClient(0), h.AppURL(0, ""), 4)}
	for _, l := range loads {
		l.waitOK(t, 100)
	}
	began := time.Now()
	stopped := make(chan struct{})
	go func() { defer close(stopped); h.StopMesh(0) }()
	// StopMesh cancels Run, which turns the node not ready first thing.
	var notReady time.Duration
	for ready(h, 0) {
		if time.Since(began) > 10*time.Second {
			t.Fatal("still ready 10s after the shutdown began")
		}
		time.Sleep(time.Millisecond)
	}
	notReady = time.Since(began)
	<-stopped
	drained := time.Since(began)
	for _, l := range loads {
		l.halt()
	}
	t.Logf("not ready after %v, stopped after %v (drain delay %v, timeout %v)", notReady.Round(time.Millisecond), drained.Round(time.Millisecond), delay, timeout)
	for i, l := range loads {
		if bad := l.answerErrors(); len(bad) > 0 {
			t.Errorf("load %d: %d requests got a wrong answer during the drain: %v", i, len(bad), first(bad, 5))
		}
		t.Logf("load %d: %d ok, %d refused", i, l.ok.Load(), l.failed.Load())
	}
	// The drain must end because nothing was left in flight, not because
	// the timeout ran out: the node's drained line says which.
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "mesh_node_drained" {
			line = m
		}
	}
	if line == nil || line["complete"] != true || line["in_flight"] != float64(0) {
		t.Errorf("the drain under steady load did not end with the requests in flight (timeout %v): %v", timeout, line)
	}
}
