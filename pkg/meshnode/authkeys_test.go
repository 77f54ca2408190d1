package meshnode

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/session"
)

const preAuthCatalog = `connector_groups: [{id: hq}]
apps:
  - id: app
    host: app.example.com
    internal_url: http://10.0.0.1:8080
    connector_group: hq
    preauth: oidc
`

const passthroughCatalog = `connector_groups: [{id: hq}]
apps:
  - id: app
    host: app.example.com
    internal_url: http://10.0.0.1:8080
    connector_group: hq
    preauth: passthrough
`

// newTestNode builds a lone plain-HTTP node on loopback with the given
// catalogue and auth URL.
func newTestNode(t *testing.T, catalogYAML, authURL string, client *http.Client) *Node {
	t.Helper()
	cfg := testConfig(t, catalogYAML)
	cfg.AuthURL, cfg.AuthHTTPClient, cfg.AuthStartupWait = authURL, client, 100*time.Millisecond
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestRunRefusesWithoutAuthKeys(t *testing.T) {
	ks, err := session.GenerateKeyset()
	if err != nil {
		t.Fatal(err)
	}
	jwks := ks.JWKS()
	serve := func(status int, body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/.well-known/jwks.json" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(status)
			w.Write(body)
		}
	}
	good := httptest.NewServer(serve(200, jwks))
	defer good.Close()
	notFound := httptest.NewServer(serve(404, nil))
	defer notFound.Close()
	garbage := httptest.NewServer(serve(200, []byte(`{"keys":[]}`)))
	defer garbage.Close()
	tlsSrv := httptest.NewTLSServer(serve(200, jwks))
	defer tlsSrv.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()

	for _, tc := range []struct {
		name, catalog, url string
		client             *http.Client
		want               string // "" means Run starts
	}{
		{"keys served", preAuthCatalog, good.URL, nil, ""},
		{"keys from a TLS server whose CA is given", preAuthCatalog, tlsSrv.URL, tlsSrv.Client(), ""},
		{"no pre-authenticated app", passthroughCatalog, downURL, nil, ""},
		{"auth functions down", preAuthCatalog, downURL, nil, "check --auth-url"},
		{"no JWKS at the URL", preAuthCatalog, notFound.URL, nil, "status 404"},
		{"no usable key", preAuthCatalog, garbage.URL, nil, "no Ed25519 signing key"},
		{"untrusted certificate", preAuthCatalog, tlsSrv.URL, nil, "--auth-ca"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNode(t, tc.catalog, tc.url, tc.client)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- n.Run(ctx) }()
			if tc.want == "" {
				waitServing(t, n, done)
				cancel()
				if err := <-done; err != nil {
					t.Fatalf("Run: %v after a start", err)
				}
				return
			}
			err := <-done
			if !errors.Is(err, ErrAuthKeys) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want ErrAuthKeys mentioning %q", err, tc.want)
			}
		})
	}
}

// waitServing waits until n answers on its public listener, failing if Run
// returns first.
func waitServing(t *testing.T, n *Node, done <-chan error) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		select {
		case err := <-done:
			t.Fatalf("Run returned before serving: %v", err)
		default:
		}
		if resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + n.Addr().String() + "/"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the node never served")
}
