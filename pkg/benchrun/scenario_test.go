package benchrun

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/pkg/testkit"
)

func TestLookup(t *testing.T) {
	cases := []struct {
		name  string
		in    []string
		want  []string
		error string
	}{
		{"all in given order", []string{"tunnel", "direct", "bulk-tunnel", "bulk-direct"}, []string{"tunnel", "direct", "bulk-tunnel", "bulk-direct"}, ""},
		{"unknown lists known", []string{"direct", "tunel"}, nil, `unknown scenario "tunel"; known: direct, tunnel, tunnel-auth, tunnel-bearer, tunnel-pad, bulk-direct, bulk-tunnel, bulk-tunnel-8, websocket, tcp, bulk-tcp, cold, failover`},
		{"repeated", []string{"direct", "direct"}, nil, `"direct" given twice`},
		{"empty", nil, nil, "no scenarios given; known: direct"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Lookup(tc.in)
			if tc.error != "" {
				if err == nil || !strings.Contains(err.Error(), tc.error) {
					t.Fatalf("got %v, want an error containing %q", err, tc.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range got {
				names = append(names, s.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %v, want %v", names, tc.want)
			}
		})
	}
	if _, err := Lookup([]string{"x"}); !errors.Is(err, ErrUnknownScenario) {
		t.Errorf("got %v, want %v", err, ErrUnknownScenario)
	}
}

func TestGetOpFailures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, _ := strconv.Atoi(r.URL.Query().Get("code")); code != 0 {
			w.WriteHeader(code)
		}
		w.Write([]byte("0123456789"))
	}))
	defer srv.Close()
	c := &http.Client{Transport: directTransport(1)}
	defer c.CloseIdleConnections()
	cases := []struct {
		name string
		path string
		want int64
		err  error
	}{
		{"ok any length", "/", -1, nil},
		{"ok exact length", "/", 10, nil},
		{"short body", "/", 11, ErrShortBody},
		{"not found", "/?code=404", -1, ErrStatus},
		{"server error", "/?code=503", -1, ErrStatus},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var read atomic.Int64
			err := GetOp(c, srv.URL+tc.path, tc.want, nil)(t.Context(), &read)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			if read.Load() != 10 {
				t.Errorf("bytes counted: got %d, want 10", read.Load())
			}
		})
	}
	t.Run("transport error", func(t *testing.T) {
		addr := testkit.RefusedAddr(t)
		var read atomic.Int64
		if err := GetOp(c, "http://"+addr+"/", -1, nil)(t.Context(), &read); err == nil {
			t.Fatal("got nil, want a dial error")
		}
	})
}

// TestHTTP1OneConnectionPerWorker checks that, against a TLS server that
// offers HTTP/2, the restricted transport speaks HTTP/1.1 and opens no more
// connections than there are workers.
func TestHTTP1OneConnectionPerWorker(t *testing.T) {
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 1 {
			http.Error(w, r.Proto, http.StatusHTTPVersionNotSupported)
			return
		}
		w.Write([]byte("ok"))
	}))
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns[c] = true
			mu.Unlock()
		}
	}
	srv.StartTLS()
	defer srv.Close()
	const workers = 4
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = true
	c := &http.Client{Transport: http1(tr, workers)}
	defer c.CloseIdleConnections()
	st, err := RunLoad(t.Context(), LoadConfig{Concurrency: workers, Duration: time.Minute, MaxRequests: 200},
		GetOp(c, srv.URL, 2, nil))
	if err != nil {
		t.Fatal(err)
	}
	if st.Errors != 0 {
		t.Fatalf("errors: got %d (%v), want 0", st.Errors, st.FirstError)
	}
	mu.Lock()
	n := len(conns)
	mu.Unlock()
	if n < 1 || n > workers {
		t.Errorf("connections: got %d, want 1..%d", n, workers)
	}
}
