package meshnode

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/session"
)

// readyz returns the status and body of the node's /readyz.
func readyz(t *testing.T, n *Node) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	n.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return rec.Code, rec.Body.String()
}

// TestReadyFlips checks that /readyz is 503 before Run, 200 while it
// serves with the auth keys fetched, and 503 again once it stops; that a
// node whose auth keys could not be fetched never becomes ready; and that
// /healthz (live) stays 200 throughout.
func TestReadyFlips(t *testing.T) {
	ks, err := session.GenerateKeyset()
	if err != nil {
		t.Fatal(err)
	}
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(ks.JWKS()) }))
	defer good.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()

	n := newTestNode(t, preAuthCatalog, good.URL, nil)
	if code, body := readyz(t, n); code != 503 || !strings.Contains(body, "FAIL serving") || !strings.Contains(body, "FAIL auth_keys") {
		t.Fatalf("before Run: %d\n%s", code, body)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	waitServing(t, n, done)
	code, body := readyz(t, n)
	if code != 200 || strings.Contains(body, "FAIL") || !strings.Contains(body, "ok auth_keys: fetched from "+good.URL) ||
		!strings.Contains(body, "ok catalog: 1 apps") || !strings.Contains(body, "ok wireguard") {
		t.Fatalf("while serving: %d\n%s", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if code, body := readyz(t, n); code != 503 || !strings.Contains(body, "FAIL serving") {
		t.Fatalf("after Run: %d\n%s", code, body)
	}

	broken := newTestNode(t, preAuthCatalog, downURL, nil)
	if err := broken.Run(t.Context()); err == nil {
		t.Fatal("Run started without auth keys")
	}
	if code, body := readyz(t, broken); code != 503 || !strings.Contains(body, "FAIL auth_keys: not fetched yet from "+downURL) {
		t.Fatalf("after a refused start: %d\n%s", code, body)
	}

	lone := newTestNode(t, passthroughCatalog, downURL, nil)
	if _, checks := lone.Ready(); !checks[len(checks)-1].OK || !strings.Contains(checks[len(checks)-1].Detail, "no app needs") {
		t.Fatalf("before Run, passthrough only: %+v", checks)
	}

	rec := httptest.NewRecorder()
	broken.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != 200 {
		t.Errorf("/healthz: %d, want 200 (live)", rec.Code)
	}
}
