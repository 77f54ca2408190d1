package meshnode

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/authority"
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
	dir := t.TempDir()
	catPath := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(catPath, []byte(catalogYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := authority.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	auth, err := authority.New(authority.Config{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	// A node serving pre-authenticated apps signs their sign-in requests
	// with its node key: it needs its node credential.
	state := filepath.Join(dir, "state")
	nk, err := InitKeys(state)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := auth.IssueNodeCredential("n1", "local", nk.WG, nk.Node, authority.DefaultNodeCredentialTTL)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{ID: "n1", Region: "local", Listen: "127.0.0.1:0", PlainHTTP: true, StateDir: state,
		Authority: auth, NodeCredential: cred, CatalogPath: catPath, CatalogPoll: -1, AuthURL: authURL, AuthHTTPClient: client,
		DrainTimeout: -1, AuthStartupWait: 100 * time.Millisecond})
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
