package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/pkg/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// TestClosers checks the reverse order, that each release runs once, that
// errors are joined but net.ErrClosed is not one.
func TestClosers(t *testing.T) {
	var c Closers
	var order []int
	bad := errors.New("bad")
	c.AddFunc(func() { order = append(order, 1) })
	c.Add(func() error { order = append(order, 2); return bad })
	c.Add(func() error { order = append(order, 3); return fmt.Errorf("close listener: %w", net.ErrClosed) })
	if err := c.Close(); !errors.Is(err, bad) || errors.Is(err, net.ErrClosed) {
		t.Fatalf("Close: %v, want only bad", err)
	}
	if want := []int{3, 2, 1}; !slices.Equal(order, want) {
		t.Fatalf("order: got %v, want %v", order, want)
	}
	if err := c.Close(); err != nil || len(order) != 3 {
		t.Fatalf("second Close: %v, releases %v: want nil and none again", err, order)
	}
}

// servers returns n plain servers on loopback listeners.
func servers(t *testing.T, n int) []Server {
	t.Helper()
	var ss []Server
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, Server{HTTP: &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Second}, Listener: l})
	}
	return ss
}

// TestServeFailure checks that one failing server stops the others (stop
// is told failed, and need not stop them itself), that Serve returns that
// failure naming the listener, and that the others' ports are released.
func TestServeFailure(t *testing.T) {
	ss := servers(t, 3)
	broken := errors.New("socket broke")
	ss[1].Listener = testkit.BrokenListener{Listener: ss[1].Listener, Err: broken}
	var told []bool
	err := Serve(t.Context(), ss, func(failed bool) { told = append(told, failed) })
	if !errors.Is(err, broken) {
		t.Fatalf("Serve: %v, want the failure", err)
	}
	if !slices.Equal(told, []bool{true}) {
		t.Fatalf("stop calls: %v, want one with failed", told)
	}
	for _, s := range ss {
		if c, err := net.Dial("tcp", s.Listener.Addr().String()); err == nil {
			c.Close()
			t.Errorf("%s still accepts", s.Listener.Addr())
		}
	}
}

// TestServeStops checks that Serve returns nil once ctx ends and stop
// ran, told not failed, and that it closes a server stop left open.
func TestServeStops(t *testing.T) {
	ss := servers(t, 2)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var told []bool
	err := Serve(ctx, ss, func(failed bool) {
		told = append(told, failed)
		ss[0].HTTP.Shutdown(context.Background()) // ss[1] is left to Serve
	})
	if err != nil || !slices.Equal(told, []bool{false}) {
		t.Fatalf("Serve: %v, stop calls %v; want nil and one not failed", err, told)
	}
}

// TestLife checks the one Run and one Close: a second Begin is refused;
// Close calls first, then ends the Run's context with the closed error,
// waits for the Run to end and calls then; Begin after Close fails with the closed
// error; a second Close returns the first's result without calling again.
func TestLife(t *testing.T) {
	closed := errors.New("closed")
	l := NewLife(closed)
	ctx, end, err := l.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Begin(t.Context()); err == nil || errors.Is(err, closed) {
		t.Fatalf("second Begin: %v, want already started", err)
	}
	var mu sync.Mutex // guards steps
	var steps []string
	step := func(s string) { mu.Lock(); steps = append(steps, s); mu.Unlock() }
	go func() {
		<-ctx.Done()
		step("run ends: " + context.Cause(ctx).Error())
		end()
	}()
	bad := errors.New("bad")
	err = l.Close(func() error {
		if !l.Closed() || ctx.Err() != nil {
			t.Error("first: want Closed, and the Run's context not ended yet")
		}
		step("first")
		return nil
	}, func() error { step("then"); return bad })
	if !errors.Is(err, bad) {
		t.Fatalf("Close: %v, want then's error", err)
	}
	if want := []string{"first", "run ends: closed", "then"}; !slices.Equal(steps, want) {
		t.Fatalf("steps: got %v, want %v", steps, want)
	}
	if _, _, err := l.Begin(t.Context()); !errors.Is(err, closed) || !l.Closed() {
		t.Fatalf("Begin after Close: %v, want the closed error", err)
	}
	if err := l.Close(func() error { t.Fatal("called again"); return nil }, nil); !errors.Is(err, bad) {
		t.Fatalf("second Close: %v, want the first's result", err)
	}
}
