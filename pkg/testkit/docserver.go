package testkit

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// DocServer is a loopback HTTP server that answers every request with one
// JSON document, which the test can swap, or with 503 while it is down
// (a key set or discovery document's provider); it counts requests. It
// is closed when the test ends.
type DocServer struct {
	*httptest.Server
	n atomic.Int32

	mu   sync.Mutex // guards the following
	body []byte
	down bool
}

// NewDocServer starts a DocServer that serves body.
func NewDocServer(tb testing.TB, body []byte) *DocServer {
	tb.Helper()
	s := &DocServer{body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.n.Add(1)
		s.mu.Lock()
		body, down := s.body, s.down
		s.mu.Unlock()
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	tb.Cleanup(s.Close)
	return s
}

// Set swaps the document and whether the server is down.
func (s *DocServer) Set(body []byte, down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.down = body, down
}

// Requests returns how many requests the server has answered.
func (s *DocServer) Requests() int { return int(s.n.Load()) }
