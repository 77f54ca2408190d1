package connector

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/testkit"
)

// TestMain fails the package's run if a test leaves a goroutine behind.
func TestMain(m *testing.M) { testkit.Main(m) }

// TestHealthBindFailure checks that a taken health port is New's error
// (it used to be Run's, after the tunnel server had started), and that New
// then stops the WireGuard node it had started (TestMain finds its
// goroutines otherwise).
func TestHealthBindFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	m := newFakeMesh(t, 0)
	c, err := New(testConfig(t, m, State{MeshURLs: []string{m.nodes[0].url}}, func(cfg *Config) { cfg.HealthAddr = busy.Addr().String() }))
	if err == nil {
		c.Close()
		t.Fatal("New with a taken health port succeeded")
	}
	if !strings.Contains(err.Error(), "health listener") {
		t.Fatalf("New: %v, want an error naming the health listener", err)
	}
}

// TestRunReturnsServerFailure checks that when the health server fails,
// Run stops the tunnel server and the attachment loops and returns that
// failure (it used to ignore it and run on).
func TestRunReturnsServerFailure(t *testing.T) {
	m := newFakeMesh(t, 0)
	c, _ := newConnector(t, m, State{MeshURLs: []string{m.nodes[0].url}}, func(cfg *Config) { cfg.HealthAddr = "127.0.0.1:0" })
	defer c.Close()
	broken := errors.New("socket broke")
	c.healthL = testkit.BrokenListener{Listener: c.healthL, Err: broken}
	if err := testkit.Result(t, testkit.Async(func() error { return c.Run(t.Context()) })); !errors.Is(err, broken) {
		t.Fatalf("Run: %v, want the health server's failure", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestCloseWhileRunning closes a running connector from several
// goroutines: Run returns ErrClosed, every Close returns after it, and a
// Run after Close is refused.
func TestCloseWhileRunning(t *testing.T) {
	m := newFakeMesh(t, 0)
	c, _ := newConnector(t, m, State{MeshURLs: []string{m.nodes[0].url}}, nil)
	done := testkit.Async(func() error { return c.Run(t.Context()) })
	waitFor(t, "attached", func() bool { return c.Attached() == 1 })
	testkit.CheckClose(t, c.Close, done, ErrClosed)
	if err := c.Run(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v, want ErrClosed", err)
	}
}

// TestRunOnce checks that a second Run is refused while the first runs,
// and that the first then ends with nil when its context ends.
func TestRunOnce(t *testing.T) {
	m := newFakeMesh(t, 0)
	c, _ := newConnector(t, m, State{MeshURLs: []string{m.nodes[0].url}}, nil)
	defer c.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := testkit.Async(func() error { return c.Run(ctx) })
	waitFor(t, "attached", func() bool { return c.Attached() == 1 })
	if err := c.Run(ctx); err == nil || errors.Is(err, ErrClosed) {
		t.Fatalf("second Run: %v, want already started", err)
	}
	cancel()
	if err := testkit.Result(t, done); err != nil {
		t.Fatalf("Run: %v, want nil", err)
	}
}
