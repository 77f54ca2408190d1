package testkit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern/postern/pkg/testkit"
)

func TestPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int32
		start := time.Now()
		err := testkit.Poll(t.Context(), time.Second, time.Minute, func() bool { return n.Add(1) == 3 })
		if err != nil || n.Load() != 3 || time.Since(start) != 2*time.Second {
			t.Errorf("got %v after %d tries and %v, want nil after 3 tries and 2s", err, n.Load(), time.Since(start))
		}
		start = time.Now()
		err = testkit.Poll(t.Context(), time.Second, 5*time.Second, func() bool { return false })
		if !errors.Is(err, testkit.ErrTimeout) || time.Since(start) != 5*time.Second {
			t.Errorf("never true: got %v after %v, want ErrTimeout after 5s", err, time.Since(start))
		}
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(1500*time.Millisecond, cancel)
		start = time.Now()
		if err := testkit.Poll(ctx, time.Second, time.Minute, func() bool { return false }); !errors.Is(err, testkit.ErrTimeout) || time.Since(start) != 1500*time.Millisecond {
			t.Errorf("cancelled: got %v after %v, want ErrTimeout after 1.5s", err, time.Since(start))
		}
	})
}

// recorder is a testing.TB that records instead of failing.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	logs   []string
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Log(a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprint(a...))
}
func (r *recorder) Fatalf(format string, a ...any) {
	r.failed = fmt.Sprintf(format, a...)
	panic(r)
}

func TestWaitFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int32
		if took := testkit.WaitFor(t, time.Minute, "third try", func() bool { return n.Add(1) == 3 }); took != 2*testkit.PollInterval {
			t.Errorf("got %v, want two intervals", took)
		}
		r := &recorder{TB: t}
		func() {
			defer func() {
				if p := recover(); p != r {
					t.Fatalf("WaitFor did not fail: %v", p)
				}
			}()
			testkit.WaitFor(r, time.Second, "the impossible", func() bool { return false }, func() string { return "state: stuck" })
		}()
		if !strings.Contains(r.failed, "the impossible: not within 1s") || len(r.logs) != 1 || r.logs[0] != "state: stuck" {
			t.Errorf("got failure %q and logs %q, want what and the status", r.failed, r.logs)
		}
	})
}

func TestSyncBuffer(t *testing.T) {
	var b testkit.SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := len(b.String()); got != 800 {
		t.Errorf("got %d bytes, want 800", got)
	}
}

func TestClock(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := testkit.NewClock(t0)
	c.Add(time.Hour)
	if got := c.Now(); !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("after Add: got %v, want %v", got, t0.Add(time.Hour))
	}
	c.Set(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Errorf("after Set: got %v, want %v", got, t0)
	}
}

func TestDocServer(t *testing.T) {
	s := testkit.NewDocServer(t, []byte(`{"a":1}`))
	get := func() (int, string) {
		resp, err := s.Client().Get(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != 200 || body != `{"a":1}` {
		t.Errorf("got %d %q, want 200 and the document", code, body)
	}
	s.Set([]byte(`{"b":2}`), true)
	if code, _ := get(); code != http.StatusServiceUnavailable {
		t.Errorf("down: got %d, want 503", code)
	}
	s.Set([]byte(`{"b":2}`), false)
	if code, body := get(); code != 200 || body != `{"b":2}` || s.Requests() != 3 {
		t.Errorf("got %d %q after %d requests, want the new document after 3", code, body, s.Requests())
	}
}

func TestToolAndFreePort(t *testing.T) {
	if p := testkit.Tool(t, "go"); !strings.HasSuffix(p, "go") {
		t.Errorf("Tool(go): got %q", p)
	}
	r := &recorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != r {
				t.Fatalf("Tool did not fail on a missing program: %v", p)
			}
		}()
		testkit.Tool(r, "postern-no-such-tool")
	}()
	if !strings.Contains(r.failed, "postern-no-such-tool not found") {
		t.Errorf("got failure %q, want it to name the program", r.failed)
	}
	port := testkit.FreePort(t)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("the free port %d: %v", port, err)
	}
	l.Close()
}

func TestRecords(t *testing.T) {
	text := `{"msg":"access","app":"a","n":1}` + "\n\n" + `{"msg":"access","app":"b"}` + "\n" + `{"msg":"other","app":"a"}` + "\n"
	if got := testkit.Records(t, text, nil); len(got) != 3 {
		t.Errorf("all: got %d records, want 3", len(got))
	}
	got := testkit.Records(t, text, map[string]any{"msg": "access", "app": "a"})
	if len(got) != 1 || got[0]["n"] != 1.0 {
		t.Errorf("matching: got %v, want the first record", got)
	}
	r := &recorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != r {
				t.Fatalf("Records did not fail on a non-JSON line: %v", p)
			}
		}()
		testkit.Records(r, text+"plain text\n", nil)
	}()
	if !strings.Contains(r.failed, "plain text") {
		t.Errorf("got failure %q, want it to quote the line", r.failed)
	}
	if addr := testkit.FreeAddr(t); !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("FreeAddr: got %q", addr)
	}
}

func TestListenServesAndCleansUp(t *testing.T) {
	var handled atomic.Int32
	var addr string
	var held net.Conn
	t.Run("serve", func(t *testing.T) {
		addr = testkit.Listen(t, func(c net.Conn) {
			handled.Add(1)
			_, _ = io.Copy(c, c) // returns only when the connection closes
		})
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = c
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo: got %q %v", buf, err)
		}
	}) // the subtest's cleanup must close the held connection and wait for its handler
	defer held.Close()
	if _, err := held.Read(make([]byte, 1)); err == nil {
		t.Error("the connection stayed open after the test ended")
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("the listener accepted after the test ended")
	}
	if handled.Load() != 1 {
		t.Errorf("got %d handled connections, want 1", handled.Load())
	}
}

func TestGoroutines(t *testing.T) {
	leaks := testkit.Goroutines()
	stop := make(chan struct{})
	go func() { <-stop }()
	time.AfterFunc(50*time.Millisecond, func() { close(stop) })
	leaks(t) // waits for the goroutine to end
	synctest.Test(t, func(t *testing.T) {
		r := &errRecorder{TB: t}
		leaks := testkit.Goroutines()
		block := make(chan struct{})
		go func() { <-block }()
		leaks(r)
		close(block)
		if !strings.Contains(r.err, "goroutines leaked") || !strings.Contains(r.err, "goroutine ") {
			t.Errorf("a leaked goroutine: got %q, want a failure with the stacks", r.err)
		}
	})
}

// errRecorder is a testing.TB that records Errorf.
type errRecorder struct {
	testing.TB
	err string
}

func (r *errRecorder) Helper() {}
func (r *errRecorder) Errorf(format string, a ...any) {
	r.err = fmt.Sprintf(format, a...)
}

func TestSecretPiece(t *testing.T) {
	for _, tt := range []struct {
		text, secret string
		want         string
	}{
		{"error: bad key s3cr3t-value", "s3cr3t-value", "s3cr"},
		{"error: bad key", "s3cr3t-value", ""},
		{"shows cr3t", "s3cr3t-value", "cr3t"},
		{"shows cr3", "s3cr3t-value", ""},
	} {
		if got := testkit.SecretPiece(tt.text, tt.secret, 4); got != tt.want {
			t.Errorf("SecretPiece(%q, %q, 4): got %q, want %q", tt.text, tt.secret, got, tt.want)
		}
	}
}

// TestWaitInCleanup: the helpers work in a cleanup, where the test's
// context is already cancelled.
func TestWaitInCleanup(t *testing.T) {
	t.Run("sub", func(t *testing.T) {
		var n atomic.Int32
		t.Cleanup(func() {
			testkit.WaitFor(t, time.Minute, "third try", func() bool { return n.Add(1) == 3 })
			leaks := testkit.Goroutines()
			done := make(chan struct{})
			go func() { <-done }()
			time.AfterFunc(30*time.Millisecond, func() { close(done) })
			leaks(t)
		})
	})
}

// TestRefusedAddr: a connection to the address is refused, and the port
// cannot be bound by anyone else while the test runs.
func TestRefusedAddr(t *testing.T) {
	addr := testkit.RefusedAddr(t)
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("dial %s: connected, want refused", addr)
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
	if l, err := net.Listen("tcp", addr); err == nil {
		l.Close()
		t.Fatalf("listen %s: succeeded, want the port held", addr)
	}
}

func TestMetricValue(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "h"}, []string{"kind", "dir"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "h"})
	reg.MustRegister(c, g)
	c.WithLabelValues("a", "in").Add(2)
	c.WithLabelValues("a", "refused").Add(3)
	g.Set(7)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"c_total", []string{"kind", "a", "dir", "refused"}, 3},
		{"c_total", []string{"dir", "in"}, 2},
		{"c_total", []string{"dir", "out"}, 0},
		{"c_total", []string{"kind", "refused"}, 0},
		{"g", nil, 7},
		{"absent", nil, 0},
	} {
		if got := testkit.MetricValue(t, reg, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s %v: got %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}
