package connector

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestProbe(t *testing.T) {
	var notReady atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && notReady.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	if err := Probe(t.Context(), srv.URL+"/readyz"); err != nil {
		t.Errorf("ready: %v", err)
	}
	notReady.Store(true)
	if err := Probe(t.Context(), srv.URL+"/readyz"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("not ready: got %v, want 503", err)
	}
	for _, u := range []string{"http://192.0.2.1:9101/healthz", "https://127.0.0.1:7801/healthz", "http://localhost.evil.com/", "http://u:p@127.0.0.1/", "::"} {
		if err := Probe(t.Context(), u); err == nil {
			t.Errorf("%s: accepted", u)
		}
	}
}

// TestEnrollOnce: an enrolled state directory is used as it is, without
// reading the token (which may be gone); an empty one needs the token.
func TestEnrollOnce(t *testing.T) {
	dir := t.TempDir()
	noToken := func() (string, error) { return "", errors.New("no token file") }
	if _, _, err := EnrollOnce(t.Context(), EnrollConfig{StateDir: dir, MeshURL: "https://mesh.example.com"}, noToken); err == nil || !strings.Contains(err.Error(), "no token file") {
		t.Fatalf("not enrolled: got %v, want the token's error", err)
	}
	s := &State{MeshURLs: []string{"https://mesh.example.com"}, ConnectorID: "c1", Group: "hq", Credential: "cred"}
	if err := s.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, enrolled, err := EnrollOnce(t.Context(), EnrollConfig{StateDir: dir}, func() (string, error) {
		t.Error("the token was read although the connector is enrolled")
		return "", nil
	})
	if err != nil || enrolled || got.ConnectorID != "c1" {
		t.Errorf("enrolled: got %+v, %v, %v", got, enrolled, err)
	}
}
