package meshnode

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/testkit"
)

const signInCatalog = `connector_groups:
  - id: hq
apps:
  - id: app
    host: app.localhost
    internal_url: http://127.0.0.1:9
    connector_group: hq
    preauth: entra
    policy:
      allow:
        users: ["t/u"]
`

// readyz asks n's admin handler for /readyz.
func readyz(t *testing.T, n *Node) (int, Readiness) {
	t.Helper()
	rec := httptest.NewRecorder()
	n.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	var rd Readiness
	if err := json.Unmarshal(rec.Body.Bytes(), &rd); err != nil {
		t.Fatalf("/readyz: %v: %q", err, rec.Body.String())
	}
	if (rec.Code == http.StatusOK) != rd.Ready {
		t.Fatalf("/readyz: status %d for %+v", rec.Code, rd)
	}
	return rec.Code, rd
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, 20*time.Second, what, cond)
}

// TestReadiness checks /readyz through a node's life: not ready before it
// serves; ready with only passthrough apps although the auth functions'
// keys cannot be fetched; not ready once a catalogue reload brings an app
// that needs sign-in and the keys are still missing (the node started
// without needing them, so Run did not refuse); ready once they are
// fetched in the background; and not ready once the drain begins, until
// Run returns and the public listener is closed. /healthz stays 200
// throughout. The drain's timing (not ready at once, the listener accepting
// for exactly DrainDelay) is TestDrainTiming's, on a synctest clock.
func TestReadiness(t *testing.T) {
	keys, err := session.GenerateKeyset()
	if err != nil {
		t.Fatal(err)
	}
	var jwksUp atomic.Bool
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !jwksUp.Load() {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		w.Write(keys.JWKS())
	}))
	defer auth.Close()
	passthrough := strings.Replace(signInCatalog, "preauth: entra", "preauth: passthrough", 1)
	passthrough = passthrough[:strings.Index(passthrough, "    policy:")]
	cfg := testConfig(t, passthrough)
	catPath := cfg.CatalogPath
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listener, cfg.CatalogPoll, cfg.AuthURL = l, 20*time.Millisecond, auth.URL
	cfg.DrainTimeout = 5 * time.Second
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, rd := readyz(t, n); rd.Ready || !slices.Contains(rd.NotReady, "not serving yet") {
		t.Fatalf("before Run: got %+v, want not serving yet", rd)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	waitFor(t, "ready with passthrough apps only", func() bool { _, rd := readyz(t, n); return rd.Ready })
	if err := os.WriteFile(catPath, []byte(signInCatalog), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "not ready once an app needs sign-in", func() bool { _, rd := readyz(t, n); return !rd.Ready })
	if _, rd := readyz(t, n); rd.Ready || len(rd.NotReady) != 1 || !strings.Contains(rd.NotReady[0], "sign-in keys") {
		t.Fatalf("without the auth functions' keys: got %+v, want only the keys missing", rd)
	}
	jwksUp.Store(true)
	waitFor(t, "ready once the keys are fetched", func() bool { _, rd := readyz(t, n); return rd.Ready })

	// Shut down: /readyz turns 503 and names the drain, the listener then
	// refuses; /healthz answers 200 all along.
	cancel()
	waitFor(t, "not ready after the shutdown began", func() bool { code, _ := readyz(t, n); return code == http.StatusServiceUnavailable })
	if _, rd := readyz(t, n); !slices.Contains(rd.NotReady, "draining: shutting down") {
		t.Fatalf("draining: got %+v", rd)
	}
	rec := httptest.NewRecorder()
	n.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/healthz while draining: got %d, want 200", rec.Code)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Fatal("the public listener still accepts after the drain")
	}
}

// TestReadinessWithoutStart checks that a node whose start was refused
// for want of the auth functions' keys (see TestRunRefusesWithoutAuthKeys)
// is not ready, naming the keys, while /healthz stays 200; that a node
// with passthrough apps only does not wait for keys; and that a node whose
// Run ended without a drain (DrainTimeout < 0) is not ready any more.
func TestReadinessWithoutStart(t *testing.T) {
	ks, err := session.GenerateKeyset()
	if err != nil {
		t.Fatal(err)
	}
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(ks.JWKS()) }))
	defer good.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()

	broken := newTestNode(t, preAuthCatalog, downURL, nil)
	if err := broken.Run(t.Context()); err == nil {
		t.Fatal("Run started without auth keys")
	}
	_, rd := readyz(t, broken)
	if rd.Ready || !slices.Contains(rd.NotReady, "not serving yet") || !slices.ContainsFunc(rd.NotReady, func(s string) bool { return strings.Contains(s, "sign-in keys") }) {
		t.Fatalf("after a refused start: %+v", rd)
	}
	rec := httptest.NewRecorder()
	broken.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("/healthz: %d, want 200 (live)", rec.Code)
	}

	lone := newTestNode(t, passthroughCatalog, downURL, nil)
	if _, rd := readyz(t, lone); slices.ContainsFunc(rd.NotReady, func(s string) bool { return strings.Contains(s, "sign-in keys") }) {
		t.Fatalf("passthrough apps only: %+v, want no wait for sign-in keys", rd)
	}

	n := newTestNode(t, preAuthCatalog, good.URL, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	waitServing(t, n, done)
	waitFor(t, "ready", func() bool { _, rd := readyz(t, n); return rd.Ready })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if code, rd := readyz(t, n); code != http.StatusServiceUnavailable || rd.Ready {
		t.Fatalf("after Run: %d %+v", code, rd)
	}
}
