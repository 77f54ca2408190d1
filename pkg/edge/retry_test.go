package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/pool"
	"github.com/postern/postern/pkg/tunnelhttp"
	"github.com/postern/postern/pkg/wgkey"

	"github.com/postern/postern/pkg/testkit"
)

// TestRetryRules is the table of when a failed attempt is sent again:
// only what provably never reached a connector, or what is idempotent,
// bodiless and lost (or suspect) before its answer.
func TestRetryRules(t *testing.T) {
	lost := fmt.Errorf("%w: read: connection reset", errLost)
	other := errors.New("read: connection reset by peer")
	body := func(read int64) *trackedBody {
		b := &trackedBody{timer: newBackendTimer(time.Hour, func() {})}
		b.n.Store(read)
		return b
	}
	tests := []struct {
		name    string
		method  string
		body    *trackedBody
		reached bool
		err     error
		want    bool
	}{
		{"never reached, GET", "GET", nil, false, other, true},
		{"never reached, POST with an unread body", "POST", body(0), false, other, true},
		{"never reached, but part of the body is gone", "POST", body(1), false, other, false},
		{"reached and lost, GET", "GET", nil, true, lost, true},
		{"reached and lost, HEAD", "HEAD", nil, true, lost, true},
		{"reached and lost, OPTIONS", "OPTIONS", nil, true, lost, true},
		{"reached and suspect, GET", "GET", nil, true, errSuspect, true},
		{"reached and lost, POST without a body", "POST", nil, true, lost, false},
		{"reached and lost, PUT", "PUT", nil, true, lost, false},
		{"reached and lost, DELETE", "DELETE", nil, true, lost, false},
		{"reached and lost, PATCH", "PATCH", nil, true, lost, false},
		{"reached and lost, GET with an unread body", "GET", body(0), true, lost, false},
		{"reached and lost, POST with a body", "POST", body(0), true, lost, false},
		{"reached and suspect, POST with a body", "POST", body(0), true, errSuspect, false},
		{"reached, GET, other error", "GET", nil, true, other, false},
		{"reached, GET, backend timeout", "GET", nil, true, errBackendTimeout, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/", nil)
			if got := retryable(req, tt.body, tt.reached, tt.err); got != tt.want {
				t.Errorf("retryable: got %v, want %v", got, tt.want)
			}
		})
	}
}

// fakeConnector is what a path's address leads to in TestTransportRetries.
type fakeConnector int

const (
	refuses    fakeConnector = iota // nothing listens: the connect fails
	serves                          // answers 200 with the body it read
	hangs                           // reads the request and never answers
	relayEmpty                      // a relay node with no connector
)

// TestTransportRetries sends requests through tunnelTransport over real
// loopback connections to fake connectors and checks, per case, how many
// connectors saw the request and what the client got.
func TestTransportRetries(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		body     string
		first    fakeConnector
		loseIt   bool // the first path is declared lost while the request waits
		status   int  // want; 0 means an error (502 at the edge)
		wantErr  error
		sawFirst bool // the first connector saw the request
	}{
		{"GET, first refuses", "GET", "", refuses, false, 200, nil, false},
		{"POST, first refuses", "POST", "payload", refuses, false, 200, nil, false},
		{"GET, first is a relay with no connector", "GET", "", relayEmpty, false, 200, nil, true},
		// The relay node took the body, which cannot be read again.
		{"POST, first is a relay with no connector", "POST", "payload", relayEmpty, false, 0, errRelayNoConnector, true},
		{"GET, first hangs and is lost", "GET", "", hangs, true, 200, nil, true},
		{"POST, first hangs and is lost", "POST", "payload", hangs, true, 0, errLost, true},
		{"PUT without a body, first hangs and is lost", "PUT", "", hangs, true, 0, errLost, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var firstSaw, secondSaw atomic.Int32
			srv := func(kind fakeConnector, saw *atomic.Int32) string {
				if kind == refuses {
					return testkit.RefusedAddr(t)
				}
				s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					b, _ := io.ReadAll(r.Body)
					saw.Add(1)
					switch kind {
					case hangs:
						<-r.Context().Done()
					case relayEmpty:
						w.Header().Set(tunnelhttp.HeaderError, tunnelhttp.ErrRelayNoConnector)
						w.WriteHeader(http.StatusServiceUnavailable)
					default:
						fmt.Fprintf(w, "%s %s", r.Method, b)
					}
				}))
				t.Cleanup(s.Close)
				return strings.TrimPrefix(s.URL, "http://")
			}
			k1, k2 := testKey(t), testKey(t)
			addrs := map[string]string{
				netipPort(k1): srv(tt.first, &firstSaw),
				netipPort(k2): srv(serves, &secondSaw),
			}
			p := pool.New(pool.Config{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addrs[addr])
			}})
			defer p.Close()
			c1, c2 := p.Upsert("c1", "hq", k1), p.Upsert("c2", "hq", k2)
			router := &orderedRouter{paths: []Path{c1, c2}}
			tr := &tunnelTransport{router: router, maxAttempts: 3}
			st := &reqState{app: &catalog.App{ID: "a", ConnectorGroup: "hq", BackendTimeout: 10 * time.Second}}
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req := httptest.NewRequestWithContext(context.WithValue(t.Context(), stateKey{}, st), tt.method, "http://connector/x", body)
			req.RequestURI = ""
			if tt.loseIt {
				go func() {
					for firstSaw.Load() == 0 && t.Context().Err() == nil {
						time.Sleep(time.Millisecond)
					}
					p.MarkDead(c1, "test")
				}()
			}
			resp, err := tr.RoundTrip(req)
			if tt.status == 0 {
				if err == nil || !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, %v; want an error wrapping %v", resp, err, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("got %v, want %d", err, tt.status)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.status || string(b) != tt.method+" "+tt.body {
					t.Fatalf("got %d %q, want %d %q", resp.StatusCode, b, tt.status, tt.method+" "+tt.body)
				}
			}
			if got := firstSaw.Load() > 0; got != tt.sawFirst {
				t.Errorf("the first connector saw the request: got %v, want %v", got, tt.sawFirst)
			}
			wantSecond := int32(0)
			if tt.status != 0 {
				wantSecond = 1
			}
			if got := secondSaw.Load(); got != wantSecond {
				t.Errorf("the second connector saw the request %d times, want %d", got, wantSecond)
			}
		})
	}
}

// orderedRouter picks its paths in order, skipping those excluded and
// those not usable.
type orderedRouter struct{ paths []Path }

func (r *orderedRouter) Pick(_ string, exclude []Path) Path {
	for _, c := range r.paths {
		if c.(interface{ Usable() bool }).Usable() && !slices.Contains(exclude, c) {
			return c
		}
	}
	return nil
}

func (r *orderedRouter) MarkDead(Path, string) {}

func testKey(tb testing.TB) wgkey.Public {
	tb.Helper()
	k, err := wgkey.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	return k.Public()
}

func netipPort(k wgkey.Public) string {
	return net.JoinHostPort(k.Addr().String(), "80")
}
