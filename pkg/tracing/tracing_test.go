package tracing_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern/postern/pkg/tracing"
	"github.com/postern/postern/pkg/tracing/tracingtest"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestFromEnv checks that tracing is off unless the environment names an
// exporter endpoint, and how each variable is read.
func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      map[string]string
		endpoint string // "" = off
		sampler  string // Description of the sampler; "" = default (nil)
		service  string
	}{
		{name: "nothing set: off", env: nil},
		{name: "only a sampler: off", env: map[string]string{"OTEL_TRACES_SAMPLER": "always_on"}},
		{name: "base endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, endpoint: "http://collector:4318/v1/traces"},
		{name: "traces endpoint as is", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://c.example/otlp/traces"},
			endpoint: "https://c.example/otlp/traces"},
		{name: "exporter otlp without endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, endpoint: tracing.DefaultEndpoint},
		{name: "exporter none wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}},
		{name: "sdk disabled wins", env: map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}},
		{name: "sampler ratio", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
			endpoint: "http://c:4318/v1/traces", sampler: "ParentBased{root:TraceIDRatioBased{0.25}"},
		{name: "always on, service name", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "always_on", "OTEL_SERVICE_NAME": "edge-eu"},
			endpoint: "http://c:4318/v1/traces", sampler: "AlwaysOnSampler", service: "edge-eu"},
		{name: "protocol http/protobuf", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
			endpoint: "http://c:4318/v1/traces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tracing.FromEnv(env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Endpoint != tc.endpoint || cfg.Enabled() != (tc.endpoint != "") {
				t.Errorf("got endpoint %q (enabled %v), want %q", cfg.Endpoint, cfg.Enabled(), tc.endpoint)
			}
			got := ""
			if cfg.Sampler != nil {
				got = cfg.Sampler.Description()
			}
			if !strings.HasPrefix(got, tc.sampler) || (tc.sampler == "") != (got == "") {
				t.Errorf("got sampler %q, want %q", got, tc.sampler)
			}
			if cfg.ServiceName != tc.service {
				t.Errorf("got service %q, want %q", cfg.ServiceName, tc.service)
			}
		})
	}
}

// TestFromEnvErrors checks that bad settings are refused with the
// variable's name, and that an endpoint carrying credentials is not
// echoed.
func TestFromEnvErrors(t *testing.T) {
	const secret = "s3cr3t:pa55,word"
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"console exporter", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, "OTEL_TRACES_EXPORTER"},
		{"grpc protocol", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{"unknown sampler", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"},
		{"ratio above 1", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG"},
		{"ratio not a number", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "NaN"}, "OTEL_TRACES_SAMPLER_ARG"},
		{"endpoint without scheme", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "user:" + secret + "@collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{"endpoint ftp", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://user:" + secret + "@c/"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{"endpoint without host", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http:///v1"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{"schedule delay", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_BSP_SCHEDULE_DELAY": "5s"}, "OTEL_BSP_SCHEDULE_DELAY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tracing.FromEnv(env(tc.env))
			if err == nil {
				t.Fatalf("got %+v, want an error", cfg)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "tracing: ") {
				t.Errorf("got %q, want it to name %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "pa55") {
				t.Errorf("error %q echoes the endpoint's credentials", err)
			}
		})
	}
}

// TestOff checks that tracing off builds nothing: no tracer, a no-op
// provider, a Shutdown that does nothing.
func TestOff(t *testing.T) {
	tr, err := tracing.New(t.Context(), "meshd", tracing.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() || tr.Tracer() != nil {
		t.Errorf("got enabled %v, tracer %v; want off and nil", tr.Enabled(), tr.Tracer())
	}
	if _, span := tr.TracerProvider().Tracer("x").Start(t.Context(), "s"); span.IsRecording() || span.SpanContext().IsValid() {
		t.Error("the provider of tracing off records spans")
	}
	if err := tr.Shutdown(t.Context()); err != nil {
		t.Error(err)
	}
}

// TestExport sends spans through the real OTLP/HTTP exporter to the
// in-process receiver, which decodes the protobuf request.
func TestExport(t *testing.T) {
	recv := tracingtest.NewReceiver(t)
	tr, err := tracing.New(t.Context(), "meshd", tracing.Config{Endpoint: recv.URL, Sampler: sdktrace.AlwaysSample()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := tr.Tracer().Start(t.Context(), "edge")
	_, child := tr.Tracer().Start(ctx, "tunnel", trace.WithSpanKind(trace.SpanKindClient))
	child.End()
	parent.End()
	if err := tr.Shutdown(t.Context()); err != nil { // flushes
		t.Fatal(err)
	}
	if err := tr.Shutdown(t.Context()); err != nil {
		t.Errorf("second Shutdown: %v, want nil (idempotent)", err)
	}
	if bad := recv.Refused(); len(bad) > 0 {
		t.Fatalf("receiver refused exports: %v", bad)
	}
	spans := recv.Trace(parent.SpanContext().TraceID().String())
	if len(spans) != 2 {
		t.Fatalf("got %d spans of the trace, want 2: %+v", len(spans), recv.Spans())
	}
	byName := map[string]tracingtest.Span{}
	for _, s := range spans {
		byName[s.Name] = s
		if s.Service != "meshd" {
			t.Errorf("span %s: got service %q, want meshd", s.Name, s.Service)
		}
	}
	if got, want := byName["tunnel"].ParentID, byName["edge"].SpanID; got != want || want == "" {
		t.Errorf("tunnel's parent: got %q, want edge's span %q", got, want)
	}
	if byName["edge"].ParentID != "" {
		t.Errorf("edge has parent %q, want a root", byName["edge"].ParentID)
	}
}

// A valid traceparent and its parts.
const (
	validTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	validSpan  = "00f067aa0ba902b7"
	validTP    = "00-" + validTrace + "-" + validSpan + "-01"
)

// TestExtractHostile feeds Extract and Inject what a client may send:
// what comes out is either the client's ids in canonical form or nothing,
// never the client's bytes as they were.
func TestExtractHostile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tp     []string
		ts     []string
		valid  bool
		wantTS string
	}{
		{name: "valid", tp: []string{validTP}, valid: true},
		{name: "valid with state", tp: []string{validTP}, ts: []string{"vendor=abc,other=x"}, valid: true, wantTS: "vendor=abc,other=x"},
		{name: "oversized state dropped alone", tp: []string{validTP}, ts: []string{"v=" + strings.Repeat("a", 600)}, valid: true},
		{name: "malformed state dropped alone", tp: []string{validTP}, ts: []string{"not a list ==="}, valid: true},
		{name: "repeated state dropped", tp: []string{validTP}, ts: []string{"a=1", "b=2"}, valid: true},
		{name: "future version, extra fields not forwarded", tp: []string{"cc-" + validTrace + "-" + validSpan + "-01-" + strings.Repeat("x", 40)}, valid: true},
		{name: "empty", tp: []string{""}},
		{name: "huge", tp: []string{validTP + strings.Repeat("-0", 8<<10)}},
		{name: "huge future version", tp: []string{"cc-" + validTrace + "-" + validSpan + "-01-" + strings.Repeat("a", 200)}},
		{name: "repeated", tp: []string{validTP, validTP}},
		{name: "version ff", tp: []string{"ff-" + validTrace + "-" + validSpan + "-01"}},
		{name: "version 00 with extra field", tp: []string{validTP + "-extra"}},
		{name: "zero trace id", tp: []string{"00-" + strings.Repeat("0", 32) + "-" + validSpan + "-01"}},
		{name: "zero span id", tp: []string{"00-" + validTrace + "-" + strings.Repeat("0", 16) + "-01"}},
		{name: "upper-case hex", tp: []string{"00-" + strings.ToUpper(validTrace) + "-" + validSpan + "-01"}},
		{name: "short trace id", tp: []string{"00-" + validTrace[:30] + "-" + validSpan + "-01"}},
		{name: "not hex", tp: []string{"00-" + strings.Repeat("z", 32) + "-" + validSpan + "-01"}},
		{name: "reserved flags", tp: []string{"00-" + validTrace + "-" + validSpan + "-ff"}},
		{name: "spaces", tp: []string{" 00-" + validTrace + "-" + validSpan + "-01 "}},
		{name: "unicode", tp: []string{"00-" + validTrace[:31] + "é-" + validSpan + "-01"}},
		{name: "CRLF smuggling", tp: []string{validTP + "\r\nX-Injected: 1"}},
		{name: "separators", tp: []string{"00_" + validTrace + "_" + validSpan + "_01"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := http.Header{tracing.HeaderTraceparent: tc.tp}
			if tc.ts != nil {
				in[tracing.HeaderTracestate] = tc.ts
			}
			ctx, ok := tracing.Extract(context.Background(), in)
			if ok != tc.valid {
				t.Fatalf("got valid %v, want %v", ok, tc.valid)
			}
			out := http.Header{tracing.HeaderTraceparent: {"stale"}, "traceparent": {"stale"}, tracing.HeaderTracestate: {"stale=1"}}
			tracing.Inject(ctx, out)
			if !tc.valid {
				if len(out) != 0 {
					t.Errorf("got %v, want no trace headers", out)
				}
				return
			}
			if got := out[tracing.HeaderTraceparent]; len(got) != 1 || got[0] != validTP {
				t.Errorf("got traceparent %q, want %q", got, validTP)
			}
			if got := out.Get(tracing.HeaderTracestate); got != tc.wantTS {
				t.Errorf("got tracestate %q, want %q", got, tc.wantTS)
			}
			//lint:ignore SA1008 the raw lower-case key is what must be gone
			if _, ok := out["traceparent"]; ok {
				t.Error("the lower-case spelling survived")
			}
		})
	}
}
