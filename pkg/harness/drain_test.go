package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/pool"
)

// TestConnectorDrainUnderMixedLoad drains one of two connectors while GETs
// and POSTs flow: the mesh must stop sending it requests before it detaches,
// and every request it took must finish; not one may fail.
func TestConnectorDrainUnderMixedLoad(t *testing.T) {
	h := start(t, Options{Connectors: 2})
	for round := range 3 {
		l := startMixedLoad(t, h.MeshClient(0), h.AppURL(0, ""), 8)
		l.waitOK(t, 200)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		began := time.Now()
		err := h.Connectors()[0].C.Drain(ctx)
		cancel()
		if err != nil {
			t.Fatalf("round %d: drain: %v", round, err)
		}
		drained := time.Since(began)
		l.waitOK(t, 200)
		l.halt()
		if f := l.failed.Load(); f != 0 {
			t.Fatalf("round %d: %d of %d requests failed while a connector drained; first: %v", round, f, f+l.ok.Load(), first(l.errors(), 5))
		}
		t.Logf("round %d: drained in %v, %d requests, none failed", round, drained.Round(time.Millisecond), l.ok.Load())
		if round < 2 {
			h.KillConnector(0)
			if err := h.RestartConnector(t.Context(), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestConnectorDrainWaitsForRequestsInTheTunnel holds a POST on its way
// through the tunnel (the connector's UDP is blocked) while the connector
// drains: the connector sees nothing in flight, but its node knows the
// request is out, so the final detach must wait for it rather than cut it.
func TestConnectorDrainWaitsForRequestsInTheTunnel(t *testing.T) {
	var logs SyncBuffer
	// Probes must not declare the connector dead while its UDP is blocked.
	h := start(t, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Pool: pool.Config{DeadAfter: 1000}})
	node := h.Meshes()[0].Node
	id := h.Connectors()[0].C.ID()
	outstanding := func() int64 {
		for _, s := range node.Pool().Statuses() {
			if s.ID == id {
				return s.Outstanding
			}
		}
		return -1 // gone
	}
	h.SetUDPBlocked(0, true)
	body := bytes.Repeat([]byte("in transit "), 400)
	posted := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, h.AppURL(0, "/echo"), bytes.NewReader(body))
		resp, err := h.MeshClient(0).Do(req)
		if err == nil {
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(got, body) {
				err = fmt.Errorf("got %d %.100q", resp.StatusCode, got)
			}
		}
		posted <- err
	}()
	if err := WaitFor(t.Context(), 10*time.Second, func() bool { return outstanding() == 1 }); err != nil {
		t.Fatal("the POST was never sent to the connector")
	}
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		drained <- h.Connectors()[0].C.Drain(ctx)
	}()
	// Wait until the connector asked to be removed: either the node removed
	// it at once (the POST is then lost) or it waits for the POST.
	err := WaitFor(t.Context(), 10*time.Second, func() bool {
		return outstanding() < 0 || strings.Contains(logs.String(), `"connector_detach_waiting"`)
	})
	if err != nil {
		t.Fatal("the connector never asked to be removed")
	}
	h.SetUDPBlocked(0, false)
	if err := <-posted; err != nil {
		t.Fatalf("POST in the tunnel during the drain: %v", err)
	}
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	if n := outstanding(); n >= 0 {
		t.Fatalf("the drained connector is still in the pool (%d in flight)", n)
	}
}
