package edge

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/pool"
	"github.com/postern/postern/pkg/tunnelhttp"
)

const (
	testTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	testSpan  = "00f067aa0ba902b7"
	testTP    = "00-" + testTrace + "-" + testSpan + "-01"
)

// traceHeaderCases are client trace headers, as raw header lines, and the
// traceparent the backend must see for an app that trusts them while
// tracing is off ("" = none).
var traceHeaderCases = []struct {
	name  string
	lines []string
	want  string
}{
	{"valid", []string{"Traceparent: " + testTP + "\r\n"}, testTP},
	{"valid lower-case name", []string{"traceparent: " + testTP + "\r\n"}, testTP},
	{"future version: canonical form only", []string{"Traceparent: cc-" + testTrace + "-" + testSpan + "-01-smuggled\r\n"}, testTP},
	{"huge", []string{"Traceparent: " + testTP + strings.Repeat("-0", 8<<10) + "\r\n"}, ""},
	{"repeated", []string{"Traceparent: " + testTP + "\r\n", "Traceparent: " + testTP + "\r\n"}, ""},
	{"malformed", []string{"Traceparent: 00-" + testTrace + "-" + testSpan + "\r\n"}, ""},
	{"zero ids", []string{"Traceparent: 00-" + strings.Repeat("0", 32) + "-" + strings.Repeat("0", 16) + "-01\r\n"}, ""},
	{"tracestate alone", []string{"Tracestate: a=1\r\n"}, ""},
}

// TestTraceHeadersOff checks the trace headers a backend gets while
// tracing is off at the edge: none from a client of an app that does not
// trust them; for one that does (app "pass"), a valid context in
// canonical form and nothing else.
func TestTraceHeadersOff(t *testing.T) {
	c := newChain(t, false, Limits{})
	for _, tc := range traceHeaderCases {
		for _, app := range []struct {
			host string
			want string
		}{{"lenient.example.com", ""}, {"pass.example.com", tc.want}} {
			t.Run(tc.name+" "+app.host, func(t *testing.T) {
				c.backend.Reset()
				resp, _, _ := c.raw(t, "GET /x HTTP/1.1\r\n", app.host, "", tc.lines...)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("got %d, want 200", resp.StatusCode)
				}
				got := c.backend.Requests()
				if len(got) != 1 {
					t.Fatalf("the backend read %d requests, want 1", len(got))
				}
				if tp := strings.Join(got[0].Header.Values("Traceparent"), "|"); tp != app.want {
					t.Errorf("backend got traceparent %q, want %q", tp, app.want)
				}
				if ts := got[0].Header.Values("Tracestate"); len(ts) != 0 && app.want == "" {
					t.Errorf("backend got tracestate %q without a traceparent", ts)
				}
			})
		}
	}
}

// TestTraceSpansAuth checks the edge's spans of a signed-in request, with
// tracing on and an in-memory recorder: the request's root span carrying
// the sign-in check and the policy decision, and the attempt through the
// tunnel below it naming its path, whose context the backend gets.
func TestTraceSpansAuth(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(t.Context()) })
	c := newTracedChain(t, false, Limits{}, tp.Tracer("test"))
	tok := c.token(t, "iis", "iis.example.com", "b", "SmartMoney.User")
	for _, tc := range []struct {
		path   string
		status int
		allow  bool
	}{{"/x", 200, true}, {"/admin", 403, false}} {
		t.Run(tc.path, func(t *testing.T) {
			c.backend.Reset()
			before := len(rec.Ended())
			resp, _, _ := c.raw(t, "GET "+tc.path+" HTTP/1.1\r\n", "iis.example.com", "", cookieLine(tok), "Traceparent: "+testTP+"\r\n")
			if resp.StatusCode != tc.status {
				t.Fatalf("got %d, want %d", resp.StatusCode, tc.status)
			}
			resp.Body.Close()
			spans := endedSpans(t, rec, before)
			edge := spans["edge"]
			if edge == nil || len(spans) != 1 {
				t.Fatalf("got spans %v, want edge alone (the sign-in check, policy, route and attempts are attributes and events)", spans)
			}
			if edge.Parent().IsValid() || edge.SpanContext().TraceID().String() == testTrace {
				t.Error("the client's traceparent became the parent of an app that does not trust it")
			}
			decision := map[bool]string{true: "allow", false: "deny"}[tc.allow]
			for k, want := range map[string]string{"postern.auth": "cookie", "postern.decision": decision, "postern.reason": "policy",
				"http.response.status_code": strconv.Itoa(tc.status)} {
				if got := attr(edge, k); got != want {
					t.Errorf("edge span: got %s %q, want %q", k, got, want)
				}
			}
			if attr(edge, "postern.rule") == "" {
				t.Error("edge span: no postern.rule")
			}
			if !tc.allow {
				if len(c.backend.Requests()) != 0 {
					t.Error("a denied request went into the tunnel")
				}
				return
			}
			if attr(edge, "postern.connector") == "" {
				t.Error("edge span: no postern.connector (the path that answered)")
			}
			got := c.backend.Requests()
			want := "00-" + edge.SpanContext().TraceID().String() + "-" + edge.SpanContext().SpanID().String() + "-01"
			if len(got) != 1 || got[0].Header.Get("Traceparent") != want {
				t.Errorf("backend got traceparent %q, want the edge span's %q", got[0].Header.Values("Traceparent"), want)
			}
		})
	}
}

// endedSpans waits (bounded) until the request's root span "edge" has
// ended, which the edge does after the response is sent, and returns the
// spans ended since the first before, by name.
func endedSpans(t *testing.T, rec *tracetest.SpanRecorder, before int) map[string]sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		spans := map[string]sdktrace.ReadOnlySpan{}
		for _, s := range rec.Ended()[before:] {
			spans[s.Name()] = s
		}
		if spans["edge"] != nil || time.Now().After(deadline) {
			return spans
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// TestTraceRetry checks the trace of a request tried twice: one span, the
// request's, with an attempt_failed event naming the first path, and both
// connectors seeing the request span's traceparent.
func TestTraceRetry(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(t.Context()) })
	seen := make(chan string, 2)
	connector := func(empty bool) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen <- r.Header.Get("Traceparent")
			if empty { // a relay node with no connector: provably not sent on
				w.Header().Set(tunnelhttp.HeaderError, tunnelhttp.ErrRelayNoConnector)
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}))
		t.Cleanup(s.Close)
		return strings.TrimPrefix(s.URL, "http://")
	}
	k1, k2 := testKey(t), testKey(t)
	addrs := map[string]string{netipPort(k1): connector(true), netipPort(k2): connector(false)}
	p := pool.New(pool.Config{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addrs[addr])
	}})
	defer p.Close()
	c1, c2 := p.Upsert("c1", "hq", k1), p.Upsert("c2", "hq", k2)
	tr := &tunnelTransport{router: &orderedRouter{paths: []Path{c1, c2}}, maxAttempts: 3, tracer: tp.Tracer("test")}
	st := &reqState{app: &catalog.App{ID: "a", ConnectorGroup: "hq", BackendTimeout: 10 * time.Second}}
	ctx, root := tp.Tracer("test").Start(context.WithValue(t.Context(), stateKey{}, st), "edge")
	req := httptest.NewRequestWithContext(ctx, "GET", "http://connector/x", nil)
	req.RequestURI = ""
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	root.End()
	if n := len(rec.Ended()); n != 1 {
		t.Fatalf("got %d spans, want the request's alone (an attempt has no span)", n)
	}
	var failed []string
	for _, e := range rec.Ended()[0].Events() {
		if e.Name != "attempt_failed" {
			continue
		}
		for _, kv := range e.Attributes {
			if kv.Key == "postern.path" {
				failed = append(failed, kv.Value.AsString())
			}
			if kv.Key == "error.message" && kv.Value.AsString() == "" {
				t.Error("attempt_failed without its error")
			}
		}
	}
	if fmt.Sprint(failed) != "[c1]" {
		t.Errorf("attempt_failed events name %v, want [c1] (the answering c2 is the request's connector)", failed)
	}
	want := "00-" + root.SpanContext().TraceID().String() + "-" + root.SpanContext().SpanID().String() + "-01"
	for i := range 2 {
		if got := <-seen; got != want {
			t.Errorf("connector %d got traceparent %q, want the request span's %q", i+1, got, want)
		}
	}
}
