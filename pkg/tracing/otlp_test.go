package tracing_test

import (
	"context"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/tracing"
	"github.com/postern/postern/pkg/tracing/tracingtest"
)

// exporter returns the exporter of cfg with millisecond retry delays,
// shut down by t's cleanup.
func exporter(t *testing.T, cfg tracing.Config) sdktrace.SpanExporter {
	t.Helper()
	e, err := tracing.NewExporter(cfg, time.Millisecond, 4*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Shutdown(context.Background()) })
	return e
}

var (
	traceA = trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	spanA  = trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
	spanB  = trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
	traceC = trace.TraceID{9: 9, 15: 1}
)

// testSpans returns two spans of two resources: a server span with a
// remote parent, every attribute type, an event, a link and an error
// status; and a plain internal span.
func testSpans(t *testing.T) []sdktrace.ReadOnlySpan {
	t.Helper()
	ts, err := trace.ParseTraceState("vendor=abc")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1700000000, 5)
	res := resource.NewSchemaless(attribute.String("service.name", "meshd"), attribute.String("postern.node", "eu-1"))
	other := resource.NewSchemaless(attribute.String("service.name", "connectord"))
	stubs := tracetest.SpanStubs{
		{
			Name:        "edge",
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceA, SpanID: spanB, TraceFlags: trace.FlagsSampled, TraceState: ts}),
			Parent:      trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceA, SpanID: spanA, TraceFlags: trace.FlagsSampled, Remote: true}),
			SpanKind:    trace.SpanKindServer,
			StartTime:   start, EndTime: start.Add(1500 * time.Microsecond),
			Attributes: []attribute.KeyValue{
				attribute.String("s", "text"), attribute.Int("i", -42), attribute.Bool("b", true), attribute.Float64("f", 2.5),
				attribute.StringSlice("ss", []string{"a", "b"}), attribute.Int64Slice("is", []int64{1, 2}),
				attribute.BoolSlice("bs", []bool{true, false}), attribute.Float64Slice("fs", []float64{0.5}),
			},
			DroppedAttributes:    3,
			Events:               []sdktrace.Event{{Name: "retry", Time: start.Add(time.Millisecond), Attributes: []attribute.KeyValue{attribute.Int("try", 2)}}},
			Links:                []sdktrace.Link{{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceC, SpanID: spanA, Remote: true}), Attributes: []attribute.KeyValue{attribute.String("why", "batch")}}},
			Status:               sdktrace.Status{Code: codes.Error, Description: "no route"},
			InstrumentationScope: instrumentation.Scope{Name: "github.com/postern/postern", Version: "1"},
			Resource:             res,
		},
		{
			Name:        "pick",
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceC, SpanID: spanA}),
			SpanKind:    trace.SpanKindInternal,
			StartTime:   start, EndTime: start,
			Status:               sdktrace.Status{Code: codes.Ok},
			InstrumentationScope: instrumentation.Scope{Name: "github.com/postern/postern"},
			Resource:             other,
		},
	}
	return stubs.Snapshots()
}

// TestExportWireFormat exports spans of every field the exporter fills
// and decodes the request as the real ExportTraceServiceRequest: ids,
// parent, trace state, flags, kinds, times, attributes of each type,
// events, links, status codes (the API's and OTLP's numbers differ) and
// the grouping by resource.
func TestExportWireFormat(t *testing.T) {
	recv := tracingtest.NewReceiver(t)
	e := exporter(t, tracing.Config{Endpoint: recv.URL})
	if err := e.ExportSpans(t.Context(), testSpans(t)); err != nil {
		t.Fatal(err)
	}
	reqs := recv.Requests()
	if len(reqs) != 1 || len(recv.Refused()) != 0 {
		t.Fatalf("got %d requests, refused %v; want 1 and none", len(reqs), recv.Refused())
	}
	rss := reqs[0].GetResourceSpans()
	if len(rss) != 2 {
		t.Fatalf("got %d resource spans, want 2 (one per resource)", len(rss))
	}
	if got := text(rss[0].GetResource().GetAttributes()); got["service.name"] != "meshd" || got["postern.node"] != "eu-1" {
		t.Errorf("first resource: got %v", got)
	}
	sss := rss[0].GetScopeSpans()
	if len(sss) != 1 || sss[0].GetScope().GetName() != "github.com/postern/postern" || sss[0].GetScope().GetVersion() != "1" || len(sss[0].GetSpans()) != 1 {
		t.Fatalf("first resource's scopes: got %v", sss)
	}
	s := sss[0].GetSpans()[0]
	for _, c := range []struct{ name, got, want string }{
		{"trace id", hex.EncodeToString(s.GetTraceId()), traceA.String()},
		{"span id", hex.EncodeToString(s.GetSpanId()), spanB.String()},
		{"parent id", hex.EncodeToString(s.GetParentSpanId()), spanA.String()},
		{"trace state", s.GetTraceState(), "vendor=abc"},
		{"name", s.GetName(), "edge"},
		{"kind", s.GetKind().String(), "SPAN_KIND_SERVER"},
		{"status", s.GetStatus().GetCode().String(), "STATUS_CODE_ERROR"},
		{"status message", s.GetStatus().GetMessage(), "no route"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if got, want := s.GetFlags(), uint32(0x01|0x100|0x200); got != want {
		t.Errorf("flags: got %#x, want %#x (sampled, has is-remote, parent remote)", got, want)
	}
	if s.GetStartTimeUnixNano() != 1700000000_000000005 || s.GetEndTimeUnixNano()-s.GetStartTimeUnixNano() != 1500_000 {
		t.Errorf("times: got %d..%d", s.GetStartTimeUnixNano(), s.GetEndTimeUnixNano())
	}
	attrs := map[string]*commonpb.AnyValue{}
	for _, kv := range s.GetAttributes() {
		attrs[kv.GetKey()] = kv.GetValue()
	}
	for k, want := range map[string]*commonpb.AnyValue{
		"s": {Value: &commonpb.AnyValue_StringValue{StringValue: "text"}},
		"i": {Value: &commonpb.AnyValue_IntValue{IntValue: -42}},
		"b": {Value: &commonpb.AnyValue_BoolValue{BoolValue: true}},
		"f": {Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 2.5}},
		"ss": {Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{
			{Value: &commonpb.AnyValue_StringValue{StringValue: "a"}}, {Value: &commonpb.AnyValue_StringValue{StringValue: "b"}}}}}},
		"is": {Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{
			{Value: &commonpb.AnyValue_IntValue{IntValue: 1}}, {Value: &commonpb.AnyValue_IntValue{IntValue: 2}}}}}},
		"bs": {Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{
			{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}, {Value: &commonpb.AnyValue_BoolValue{BoolValue: false}}}}}},
		"fs": {Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{
			{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 0.5}}}}}},
	} {
		if !proto.Equal(attrs[k], want) {
			t.Errorf("attribute %s: got %v, want %v", k, attrs[k], want)
		}
	}
	if s.GetDroppedAttributesCount() != 3 {
		t.Errorf("dropped attributes: got %d, want 3", s.GetDroppedAttributesCount())
	}
	if ev := s.GetEvents(); len(ev) != 1 || ev[0].GetName() != "retry" || text(ev[0].GetAttributes())["try"] != "2" || ev[0].GetTimeUnixNano() != 1700000000_001000005 {
		t.Errorf("events: got %v", ev)
	}
	if l := s.GetLinks(); len(l) != 1 || hex.EncodeToString(l[0].GetTraceId()) != traceC.String() || hex.EncodeToString(l[0].GetSpanId()) != spanA.String() ||
		l[0].GetFlags() != 0x300 || text(l[0].GetAttributes())["why"] != "batch" {
		t.Errorf("links: got %v", l)
	}
	p := rss[1].GetScopeSpans()[0].GetSpans()[0]
	if p.GetName() != "pick" || p.GetKind() != tracepb.Span_SPAN_KIND_INTERNAL || len(p.GetParentSpanId()) != 0 ||
		p.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_OK || p.GetFlags() != 0x100 {
		t.Errorf("second span: got %v", p)
	}
	if text(rss[1].GetResource().GetAttributes())["service.name"] != "connectord" {
		t.Errorf("second resource: got %v", rss[1].GetResource())
	}
	h := recv.Headers()[0]
	if h.Get("Content-Type") != "application/x-protobuf" || h.Get("Content-Encoding") != "" {
		t.Errorf("headers: got %v", h)
	}
}

func text(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = strconv.FormatInt(v.IntValue, 10)
		}
	}
	return m
}

// TestExportRetries checks the answers worth retrying (429, 502, 503,
// 504, a collector that cannot be reached) are retried until one
// succeeds, and the batch then arrives once.
func TestExportRetries(t *testing.T) {
	recv := tracingtest.NewReceiver(t)
	recv.Script(tracingtest.Answer{Status: 503}, tracingtest.Answer{Status: 429, Header: http.Header{"Retry-After": {"0"}}},
		tracingtest.Answer{Status: 502}, tracingtest.Answer{Status: 504})
	e := exporter(t, tracing.Config{Endpoint: recv.URL})
	if err := e.ExportSpans(t.Context(), testSpans(t)); err != nil {
		t.Fatal(err)
	}
	if n := len(recv.Requests()); n != 5 {
		t.Errorf("got %d requests, want 5 (4 refused, 1 accepted)", n)
	}
	if n := len(recv.Spans()); n != 2 {
		t.Errorf("got %d spans kept, want the batch's 2 once", n)
	}
}

// TestExportRefusals checks the answers not worth retrying, and the
// bounds on retrying: each ends the export with an error after the
// expected number of tries, and no error quotes the endpoint's
// credentials or a header value.
func TestExportRefusals(t *testing.T) {
	busy := make([]tracingtest.Answer, tracing.ExportAttempts+1)
	for i := range busy {
		busy[i] = tracingtest.Answer{Status: 503}
	}
	partial, err := proto.Marshal(&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 1, ErrorMessage: "span name too long"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		answers []tracingtest.Answer
		tries   int
		want    string
	}{
		{"bad request", []tracingtest.Answer{{Status: 400, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte("bad\x00 batch\r\nX-Injected: 1")}}, 1, "400 Bad Request: bad  batch  X-Injected: 1"},
		{"unauthorized", []tracingtest.Answer{{Status: 401}}, 1, "401"},
		{"not found", []tracingtest.Answer{{Status: 404}}, 1, "404"},
		{"payload too large", []tracingtest.Answer{{Status: 413}}, 1, "413"},
		{"internal error", []tracingtest.Answer{{Status: 500}}, 1, "500"},
		{"redirect not followed", []tracingtest.Answer{{Status: 307, Header: http.Header{"Location": {"http://127.0.0.1:1/steal"}}}}, 1, "307"},
		{"always busy", busy, tracing.ExportAttempts, "503"},
		{"retry after the deadline", []tracingtest.Answer{{Status: 429, Header: http.Header{"Retry-After": {"3600"}}}}, 1, "retry after 1h0m0s"},
		{"partial success", []tracingtest.Answer{{Header: http.Header{"Content-Type": {"application/x-protobuf"}}, Body: partial}}, 1, "rejected 1 spans: span name too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recv := tracingtest.NewReceiver(t)
			recv.Script(tc.answers...)
			url := strings.Replace(recv.URL, "http://", "http://user:pw-s3cret@", 1)
			e := exporter(t, tracing.Config{Endpoint: url, Headers: map[string]string{"Api-Key": "hdr-s3cret"}})
			err := e.ExportSpans(t.Context(), testSpans(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q quotes a credential", err)
			}
			if n := len(recv.Requests()); n != tc.tries {
				t.Errorf("got %d tries, want %d", n, tc.tries)
			}
			if got := recv.Headers()[0].Get("Api-Key"); got != "hdr-s3cret" {
				t.Errorf("header: got %q", got)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		addr := testkit.RefusedAddr(t) // nothing listens there
		e := exporter(t, tracing.Config{Endpoint: "http://user:pw-s3cret@" + addr + "/v1/traces", ExportTimeout: time.Minute})
		err = e.ExportSpans(t.Context(), testSpans(t))
		if err == nil || !strings.Contains(err.Error(), "try 5") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("got %v, want an error after %d tries that quotes no credential", err, tracing.ExportAttempts)
		}
	})
}

// TestExportShutdown checks that an export in flight ends when the
// exporter is shut down, and that later exports fail at once.
func TestExportShutdown(t *testing.T) {
	recv := tracingtest.NewReceiver(t)
	busy := make([]tracingtest.Answer, 100)
	for i := range busy {
		busy[i] = tracingtest.Answer{Status: 503, Header: http.Header{"Retry-After": {"1"}}}
	}
	recv.Script(busy...)
	e, err := tracing.NewExporter(tracing.Config{Endpoint: recv.URL, ExportTimeout: time.Hour}, time.Millisecond, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.ExportSpans(context.Background(), testSpans(t)) }()
	testkit.WaitFor(t, time.Minute, "a first export request", func() bool { return len(recv.Requests()) > 0 })
	if err := e.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Error("the export in flight succeeded after Shutdown")
	}
	if err := e.ExportSpans(t.Context(), testSpans(t)); err == nil || !strings.Contains(err.Error(), "shutdown") {
		t.Errorf("export after Shutdown: got %v", err)
	}
	if err := e.Shutdown(t.Context()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

// TestExportFromEnv checks the exporter variables end to end: headers
// (percent-decoded), gzip, and an https collector trusted through the
// certificate file, which is refused without it.
func TestExportFromEnv(t *testing.T) {
	recv := tracingtest.NewTLSReceiver(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, recv.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":    recv.URL,
		"OTEL_EXPORTER_OTLP_HEADERS":            "api-key=a%3Db%2Cc, X-Tenant = eu",
		"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
		"OTEL_EXPORTER_OTLP_COMPRESSION":        "none",
		"OTEL_EXPORTER_OTLP_CERTIFICATE":        ca,
		"OTEL_EXPORTER_OTLP_TIMEOUT":            "30000",
	}
	cfg, err := tracing.FromEnv(env(vars))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ExportTimeout != 30*time.Second || cfg.Compression != "gzip" {
		t.Errorf("got timeout %v, compression %q", cfg.ExportTimeout, cfg.Compression)
	}
	if err := exporter(t, cfg).ExportSpans(t.Context(), testSpans(t)); err != nil {
		t.Fatal(err)
	}
	if bad := recv.Refused(); len(bad) > 0 {
		t.Fatalf("refused: %v", bad)
	}
	h := recv.Headers()[0]
	if h.Get("Api-Key") != "a=b,c" || h.Get("X-Tenant") != "eu" || h.Get("Content-Encoding") != "gzip" {
		t.Errorf("got headers %v", h)
	}
	if n := len(recv.Spans()); n != 2 {
		t.Errorf("got %d spans, want 2", n)
	}
	cfg.CAFile = ""
	if err := exporter(t, cfg).ExportSpans(t.Context(), testSpans(t)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA file: got %v, want a certificate error", err)
	}
}

// TestExporterFromEnvErrors feeds bad exporter variables: each is refused
// naming the variable, and no error echoes a header's name or value.
func TestExporterFromEnvErrors(t *testing.T) {
	const ep = "http://c:4318"
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"pair without =", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "Authorization Bearer s3cr3t"}, "OTEL_EXPORTER_OTLP_HEADERS: pair 1"},
		{"colon form", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "a=1,Authorization:Bearer s3cr3t=x"}, "OTEL_EXPORTER_OTLP_TRACES_HEADERS: pair 2"},
		{"empty name", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "=s3cr3t"}, "pair 1"},
		{"bad escape", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "k=s3cr3t%zz"}, "percent-encoded"},
		{"CRLF in value", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "k=s3cr3t%0d%0aX-Injected:%201"}, "control characters"},
		{"timeout unit", map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, "OTEL_EXPORTER_OTLP_TIMEOUT"},
		{"timeout zero", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "0"}, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"},
		{"compression", map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "OTEL_EXPORTER_OTLP_COMPRESSION"},
		{"key without certificate", map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_KEY": "/k.pem"}, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = ep
			_, err := tracing.FromEnv(env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "tracing: ") {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "Bearer") {
				t.Errorf("error %q echoes a header", err)
			}
		})
	}
	t.Run("missing CA file", func(t *testing.T) {
		cfg, err := tracing.FromEnv(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": ep, "OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem"}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tracing.New(t.Context(), "meshd", cfg); err == nil || !strings.Contains(err.Error(), "certificate authority") {
			t.Errorf("got %v, want a certificate authority error", err)
		}
	})
}

// TestExportHostileText exports what a client can put into a span (a
// percent-decoded path that is not UTF-8, a huge value) and the value
// types the wire test leaves out (bytes, nested slices and maps), in a
// batch large enough for every length prefix to take several bytes: the
// real ExportTraceServiceRequest decodes it (a string that is not UTF-8
// would fail the whole request), the invalid bytes arrive as U+FFFD and
// the huge value whole.
func TestExportHostileText(t *testing.T) {
	recv := tracingtest.NewReceiver(t)
	e := exporter(t, tracing.Config{Endpoint: recv.URL})
	huge := strings.Repeat("a", 70000)
	stubs := make(tracetest.SpanStubs, 300)
	for i := range stubs {
		stubs[i] = tracetest.SpanStub{
			Name:        "edge\xff",
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceA, SpanID: trace.SpanID{7: byte(i + 1), 6: byte(i >> 8)}}),
			Attributes: []attribute.KeyValue{
				attribute.String("url.path", "/a%ff\xff\xfe/b"), attribute.String("big", huge),
				attribute.ByteSlice("raw", []byte{0xff, 0}),
				attribute.Slice("nested", attribute.StringValue("x"), attribute.IntValue(3)),
				attribute.Map("m", attribute.String("k", "v\xc3"), attribute.Bool("on", false)),
				attribute.String("", ""),
			},
			Resource: resource.NewSchemaless(attribute.String("service.name", "meshd\xff")),
		}
	}
	if err := e.ExportSpans(t.Context(), stubs.Snapshots()); err != nil {
		t.Fatal(err)
	}
	if bad := recv.Refused(); len(bad) > 0 {
		t.Fatalf("the receiver refused the request: %v", bad)
	}
	spans := recv.Spans()
	if len(spans) != len(stubs) {
		t.Fatalf("got %d spans, want %d", len(spans), len(stubs))
	}
	s := spans[len(spans)-1]
	if s.Name != "edge\uFFFD" || s.Attrs["url.path"] != "/a%ff\uFFFD/b" || s.Attrs["big"] != huge || s.Service != "meshd\uFFFD" {
		t.Errorf("got name %q, path %q, big of %d bytes, service %q", s.Name, s.Attrs["url.path"], len(s.Attrs["big"]), s.Service)
	}
	kv := map[string]*commonpb.AnyValue{}
	for _, a := range recv.Requests()[0].GetResourceSpans()[0].GetScopeSpans()[0].GetSpans()[0].GetAttributes() {
		kv[a.GetKey()] = a.GetValue()
	}
	want := map[string]*commonpb.AnyValue{
		"raw": {Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{0xff, 0}}},
		"nested": {Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{
			{Value: &commonpb.AnyValue_StringValue{StringValue: "x"}}, {Value: &commonpb.AnyValue_IntValue{IntValue: 3}}}}}},
		"m": {Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{
			{Key: "k", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "v\uFFFD"}}},
			{Key: "on", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: false}}}}}}},
	}
	for k, w := range want {
		if !proto.Equal(kv[k], w) {
			t.Errorf("attribute %s: got %v, want %v", k, kv[k], w)
		}
	}
}
