package connector

import (
	"net"
	"net/http"
	"testing"
)

func TestConnTracker(t *testing.T) {
	var tr connTracker
	a, b := &net.TCPConn{}, &net.UnixConn{}
	steps := []struct {
		c    net.Conn
		s    http.ConnState
		want int
	}{
		{a, http.StateNew, 0}, // open, but no request yet
		{b, http.StateNew, 0},
		{a, http.StateActive, 1}, // a request's first byte
		{b, http.StateActive, 2},
		{a, http.StateIdle, 1},
		{a, http.StateActive, 2}, // the next request on a kept-alive connection
		{b, http.StateHijacked, 1},
		{a, http.StateClosed, 0},
		{a, http.StateClosed, 0},
	}
	for i, s := range steps {
		tr.track(s.c, s.s)
		if got := tr.n(); got != s.want {
			t.Fatalf("step %d (%v): got %d busy, want %d", i, s.s, got, s.want)
		}
	}
}
