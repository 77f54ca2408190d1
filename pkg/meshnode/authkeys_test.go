package meshnode

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/testkit"
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
	client := &http.Client{Timeout: 2 * time.Second}
	testkit.WaitFor(t, time.Minute, "the node serves", func() bool {
		select {
		case err := <-done:
			t.Fatalf("Run returned before serving: %v", err)
		default:
		}
		resp, err := client.Get("http://" + n.Addr().String() + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
}

// roundTripFunc is an http.RoundTripper in memory: the auth functions'
// answers without a socket, so that checkAuthKeys runs in a synctest
// bubble.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestCheckAuthKeysTiming checks the start-up fetch of the auth functions'
// keys on the bubble's clock: it retries once a second and a last time at
// AuthStartupWait, then refuses; it stops as soon as a fetch succeeds; a
// certificate error refuses at once, naming --auth-ca.
func TestCheckAuthKeysTiming(t *testing.T) {
	ks, err := session.GenerateKeyset()
	if err != nil {
		t.Fatal(err)
	}
	const wait = 2500 * time.Millisecond // tries at 0, 1, 2 and 2.5 s
	down := errors.New("connection refused")
	certErr := &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}
	for _, tc := range []struct {
		name     string
		answer   func(try int) error // nil serves the keys
		wantErr  string              // "" means the keys were fetched
		tries    int
		wantTook time.Duration
	}{
		{"down throughout", func(int) error { return down }, "check --auth-url", 4, wait},
		{"up at the third try", func(try int) error {
			if try < 3 {
				return down
			}
			return nil
		}, "", 3, 2 * time.Second},
		{"untrusted certificate", func(int) error { return certErr }, "--auth-ca", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tries := 0
			var answer func(int) error
			client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				tries++
				if err := answer(tries); err != nil {
					return nil, err
				}
				return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
					Body: io.NopCloser(bytes.NewReader(ks.JWKS())), Request: r}, nil
			})}
			n := newTestNode(t, preAuthCatalog, "https://auth.example", client)
			n.cfg.AuthStartupWait = wait
			synctest.Test(t, func(t *testing.T) {
				answer = tc.answer
				start := time.Now()
				err := n.checkAuthKeys(t.Context())
				took := time.Since(start)
				if tc.wantErr == "" && err != nil || tc.wantErr != "" && (!errors.Is(err, ErrAuthKeys) || !strings.Contains(err.Error(), tc.wantErr)) {
					t.Fatalf("checkAuthKeys: %v, want %q", err, tc.wantErr)
				}
				if tries != tc.tries || took != tc.wantTook {
					t.Errorf("got %d tries over %v, want %d over %v", tries, took, tc.tries, tc.wantTook)
				}
			})
		})
	}
}
