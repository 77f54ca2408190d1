package egress

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// meshTP is the trace context a mesh node sends with a request.
const (
	meshTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	meshSpan  = "00f067aa0ba902b7"
	meshTP    = "00-" + meshTrace + "-" + meshSpan + "-01"
)

// TestTrace checks the connector's spans and the traceparent its backend
// gets: with tracing on, "connector" below the mesh's span and "backend"
// below it, named in the backend's traceparent; with tracing off, the
// mesh's traceparent unchanged.
func TestTrace(t *testing.T) {
	seenc := make(chan []string, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenc <- r.Header.Values("Traceparent")
	}))
	defer backend.Close()
	meshHeaders := func(r *http.Request) { r.Header.Set("Traceparent", meshTP) }

	t.Run("off", func(t *testing.T) {
		if resp := serveTunnel(t, Config{AllowList: loopback(t)}, backend.URL, meshHeaders); resp.StatusCode != 200 {
			t.Fatalf("got %d, want 200", resp.StatusCode)
		}
		if seen := <-seenc; len(seen) != 1 || seen[0] != meshTP {
			t.Errorf("backend got traceparent %q, want the mesh's %q", seen, meshTP)
		}
	})
	t.Run("on", func(t *testing.T) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		defer tp.Shutdown(t.Context())
		resp := serveTunnel(t, Config{AllowList: loopback(t), Tracer: tp.Tracer("test")}, backend.URL, meshHeaders)
		if resp.StatusCode != 200 {
			t.Fatalf("got %d, want 200", resp.StatusCode)
		}
		resp.Body.Close()
		seen := <-seenc
		// The connector span ends when the handler returns, after the
		// response: wait for it, bounded.
		spans := map[string]sdktrace.ReadOnlySpan{}
		for deadline := time.Now().Add(30 * time.Second); spans["connector"] == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			for _, s := range rec.Ended() {
				spans[s.Name()] = s
			}
		}
		conn, back := spans["connector"], spans["backend"]
		if back == nil || conn == nil {
			t.Fatalf("got spans %v, want connector and backend", spans)
		}
		want := "00-" + meshTrace + "-" + back.SpanContext().SpanID().String() + "-01"
		if len(seen) != 1 || seen[0] != want {
			t.Errorf("backend got traceparent %q, want the backend span's %q", seen, want)
		}
		if conn.Parent().SpanID().String() != meshSpan || back.Parent().SpanID() != conn.SpanContext().SpanID() {
			t.Error("want the mesh's span ← connector ← backend")
		}
		if got := conn.Parent().TraceID().String(); got != meshTrace {
			t.Errorf("connector span in trace %s, want the mesh's %s", got, meshTrace)
		}
	})
}
