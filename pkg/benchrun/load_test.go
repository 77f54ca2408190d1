package benchrun

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

func TestRunLoadCountsErrors(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if served.Add(1)%3 == 0 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	for _, conc := range []int{1, 3} {
		t.Run(fmt.Sprintf("c=%d", conc), func(t *testing.T) {
			served.Store(0)
			c := &http.Client{Transport: directTransport(conc)}
			defer c.CloseIdleConnections()
			// The count bound ends the run long before the duration does.
			st, err := RunLoad(t.Context(), LoadConfig{Concurrency: conc, Duration: time.Minute, MaxRequests: 30},
				GetOp(c, srv.URL, -1, nil))
			if err != nil {
				t.Fatal(err)
			}
			if st.Requests != 30 || served.Load() != 30 {
				t.Errorf("requests: got %d (served %d), want 30", st.Requests, served.Load())
			}
			if st.Errors != 10 {
				t.Errorf("errors: got %d, want 10", st.Errors)
			}
			if got := st.Latency.TotalCount(); got != 20 {
				t.Errorf("latencies recorded: got %d, want 20 (successes only)", got)
			}
			if !errors.Is(st.FirstError, ErrStatus) || !strings.Contains(st.FirstError.Error(), "500") {
				t.Errorf("first error: got %v, want %v with 500", st.FirstError, ErrStatus)
			}
		})
	}
}

// TestRunLoadWarmupNotRecorded runs in a synctest bubble: the windows are
// exact, so a loaded machine cannot starve the measurement window.
func TestRunLoadWarmupNotRecorded(t *testing.T) {
	synctest.Test(t, testRunLoadWarmupNotRecorded)
}

func testRunLoadWarmupNotRecorded(t *testing.T) {
	var calls atomic.Int64
	op := func(ctx context.Context, read *atomic.Int64) error {
		calls.Add(1)
		read.Add(10)
		select { // a slow request, so the loop is bounded by time
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
			return nil
		}
	}
	st, err := RunLoad(t.Context(), LoadConfig{Concurrency: 2, Warmup: 100 * time.Millisecond, Duration: 100 * time.Millisecond}, op)
	if err != nil {
		t.Fatal(err)
	}
	if st.Requests == 0 || st.Requests >= calls.Load() {
		t.Errorf("requests: got %d of %d calls, want some but not the warm-up ones", st.Requests, calls.Load())
	}
	if st.Errors != 0 {
		t.Errorf("errors: got %d, want 0: a request cut off at the end is not an error", st.Errors)
	}
	if st.Bytes <= 0 || st.Bytes >= 10*calls.Load() {
		t.Errorf("bytes: got %d of %d read, want only those of the measurement window", st.Bytes, 10*calls.Load())
	}
	if st.Elapsed <= 0 || st.Elapsed > 100*time.Millisecond {
		t.Errorf("elapsed: got %v, want in (0, 100ms]", st.Elapsed)
	}
}

func TestRunLoadPrimes(t *testing.T) {
	var calls atomic.Int64
	op := func(context.Context, *atomic.Int64) error {
		if calls.Add(1) <= 3 { // the priming requests, which all finish before any other starts
			return errors.New("handshake failed")
		}
		return nil
	}
	st, err := RunLoad(t.Context(), LoadConfig{Concurrency: 3, Duration: time.Minute, MaxRequests: 9, Prime: true}, op)
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 9 || st.Requests != 6 || st.Errors != 3 || st.Latency.TotalCount() != 6 {
		t.Fatalf("got %d calls, %d requests, %d errors, %d latencies; want 9, 6, 3, 6",
			calls.Load(), st.Requests, st.Errors, st.Latency.TotalCount())
	}
	if st.FirstError == nil || st.FirstError.Error() != "handshake failed" {
		t.Errorf("first error: got %v, want the priming failure", st.FirstError)
	}
}

func TestRunLoadStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	op := func(ctx context.Context, _ *atomic.Int64) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	}
	_, err := RunLoad(ctx, LoadConfig{Concurrency: 4, Duration: time.Minute}, op)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want %v", err, context.Canceled)
	}
}

func TestRunLoadBadConfig(t *testing.T) {
	op := func(context.Context, *atomic.Int64) error { return nil }
	cases := []struct {
		name string
		cfg  LoadConfig
		want string
	}{
		{"no duration", LoadConfig{}, "duration"},
		{"negative rate", LoadConfig{Duration: time.Second, Rate: -1}, "rate"},
		{"negative requests", LoadConfig{Requests: -1, Duration: time.Second}, "request count"},
		{"negative warmup", LoadConfig{Duration: time.Second, Warmup: -1}, "warm-up"},
		{"negative concurrency", LoadConfig{Duration: time.Second, Concurrency: -1}, "concurrency"},
		{"negative max", LoadConfig{Duration: time.Second, MaxRequests: -1}, "max requests"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := RunLoad(t.Context(), tc.cfg, op)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error about %s", err, tc.want)
			}
		})
	}
}

// TestRunLoadOpenLoopNoCoordinatedOmission checks that in an open loop a
// stalled request delays the ones scheduled behind it, and that their
// latency counts from their scheduled send time.
func TestRunLoadOpenLoopNoCoordinatedOmission(t *testing.T) {
	var calls atomic.Int64
	op := func(ctx context.Context, _ *atomic.Int64) error {
		if calls.Add(1) == 1 {
			time.Sleep(100 * time.Millisecond) // the stall; a worker's own time, not a wait for something
		}
		return nil
	}
	// One worker, 1,000 req/s: the 100 ms stall delays about 100 scheduled
	// requests, which a closed loop would never have sent.
	st, err := RunLoad(t.Context(), LoadConfig{Concurrency: 1, Rate: 1000, Duration: time.Minute, Requests: 200}, op)
	if err != nil {
		t.Fatal(err)
	}
	if st.Requests != 200 || st.Latency.TotalCount() != 200 {
		t.Fatalf("requests: got %d (%d latencies), want 200", st.Requests, st.Latency.TotalCount())
	}
	// About 100 of the 200 queued behind the stall, waiting 100..0 ms.
	if got := st.Latency.ValueAtQuantile(75); got < 25_000 {
		t.Errorf("p75: got %dµs, want ≥ 25ms: requests queued behind the stall must count their wait", got)
	}
}

func TestRunLoadRequestsBound(t *testing.T) {
	var calls atomic.Int64
	op := func(context.Context, *atomic.Int64) error {
		if calls.Add(1)%4 == 0 {
			return io.ErrUnexpectedEOF
		}
		return nil
	}
	st, err := RunLoad(t.Context(), LoadConfig{Concurrency: 3, Requests: 40, Warmup: 10 * time.Millisecond}, op)
	if err != nil {
		t.Fatal(err)
	}
	if st.Requests != 40 {
		t.Errorf("requests: got %d, want 40", st.Requests)
	}
	if st.Errors == 0 || st.ErrorsByKind["eof"] != st.Errors {
		t.Errorf("errors by kind: got %v (errors %d), want all eof", st.ErrorsByKind, st.Errors)
	}
	if st.Elapsed <= 0 {
		t.Errorf("elapsed: got %v, want > 0", st.Elapsed)
	}
}

func TestErrorKind(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("get: %w", statusError{503}), "status_503"},
		{fmt.Errorf("get: %w", ErrShortBody), "short_body"},
		{fmt.Errorf("get: %w", ErrProtocol), "protocol"},
		{fmt.Errorf("ws: %w", ErrWebSocket), "websocket"},
		{fmt.Errorf("get: %w", context.DeadlineExceeded), "timeout"},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, "refused"},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, "reset"},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), "eof"},
		{x509.UnknownAuthorityError{}, "tls"},
		{context.Canceled, "canceled"},
		{errors.New("mystery"), "other"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			if got := ErrorKind(tc.err); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if !errors.Is(statusError{404}, ErrStatus) {
		t.Errorf("got statusError not matching, want it to match %v", ErrStatus)
	}
}
