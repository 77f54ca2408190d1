//go:build soak

package harness

import (
	"net/http"
	"testing"
	"time"
)

// TestRelayPOSTSoak runs the POST soak through a relay (user → node A →
// node B → connector) and wants every body back whole. It runs in
// task soak, not in the default test run (see TestRelayDuplex).
func TestRelayPOSTSoak(t *testing.T) {
	h := startRelay(t, 0)
	began := time.Now()
	res := postSoak(t, func() *http.Transport { return h.MeshTransport(0) }, h.GroupURL(0, RelayGroup, "/echo"), soakRequests, 16)
	t.Logf("relay: %v in %v", res, time.Since(began).Round(time.Millisecond))
	if res.failed.Load() != 0 || res.ok.Load() != soakRequests {
		t.Fatalf("POST soak through the relay: %v, want %d ok", res, soakRequests)
	}
}
