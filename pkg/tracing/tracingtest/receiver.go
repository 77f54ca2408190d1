// Package tracingtest is an in-process OTLP/HTTP trace receiver for tests:
// an HTTP server on loopback that decodes the real protobuf
// ExportTraceServiceRequest that OpenTelemetry exporters send and keeps
// the spans for the test to inspect. No production binary links it.
package tracingtest

import (
	"cmp"
	"compress/gzip"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened.
type Span struct {
	// Service is the service.name of the span's resource.
	Service string
	// Resource and Attrs hold the resource's and the span's string, int
	// and bool attributes, in their text form.
	Resource, Attrs map[string]string
	// Name is the span's name.
	Name string
	// Kind is the span's kind.
	Kind tracepb.Span_SpanKind
	// TraceID, SpanID and ParentID are lower-case hex; ParentID is empty
	// for a root span.
	TraceID, SpanID, ParentID string
	// Error reports that the span's status is an error.
	Error bool
}

// Receiver collects the spans posted to URL. Its methods are safe for
// concurrent use.
type Receiver struct {
	// URL is the OTLP/HTTP traces endpoint ("http://127.0.0.1:port/v1/traces").
	URL string
	srv *httptest.Server

	mu      sync.Mutex // guards the following
	spans   []Span
	bad     []string // why requests were refused
	raw     []*coltracepb.ExportTraceServiceRequest
	headers []http.Header
	script  []Answer
}

// Answer is a scripted reply to one export request (see Script).
type Answer struct {
	// Status is the HTTP status; zero means 200.
	Status int
	// Header is added to the reply; nil means none.
	Header http.Header
	// Body is the reply's body; nil means an empty
	// ExportTraceServiceResponse for a 2xx, a short text otherwise.
	Body []byte
}

// maxBody bounds one export request.
const maxBody = 32 << 20

// NewReceiver starts a receiver on 127.0.0.1, closed by tb's cleanup.
func NewReceiver(tb testing.TB) *Receiver { return newReceiver(tb, false) }

// NewTLSReceiver starts a receiver serving https on 127.0.0.1 with a
// certificate of its own (CertPEM), closed by tb's cleanup.
func NewTLSReceiver(tb testing.TB) *Receiver { return newReceiver(tb, true) }

func newReceiver(tb testing.TB, tls bool) *Receiver {
	tb.Helper()
	r := &Receiver{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.serve)
	r.srv = httptest.NewUnstartedServer(mux)
	if tls {
		r.srv.StartTLS()
	} else {
		r.srv.Start()
	}
	r.URL = r.srv.URL + "/v1/traces"
	tb.Cleanup(r.srv.Close)
	return r
}

// NewSink starts an OTLP/HTTP endpoint on 127.0.0.1 that reads and
// discards every export and answers it as a collector does, for
// benchmarks; closed by tb's cleanup. It returns the traces URL.
func NewSink(tb testing.TB) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(SinkHandler))
	tb.Cleanup(srv.Close)
	return srv.URL + "/v1/traces"
}

// CertPEM returns the PEM certificate of a TLS receiver.
func (r *Receiver) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.srv.Certificate().Raw})
}

// Script makes the next len(answers) export requests get these answers,
// in order, instead of a success; a request answered with a status
// outside 2xx is decoded (and refused if malformed) but its spans are not
// kept.
func (r *Receiver) Script(answers ...Answer) {
	r.mu.Lock()
	r.script = append(r.script, answers...)
	r.mu.Unlock()
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = http.MaxBytesReader(w, req.Body, maxBody)
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			r.refuse(w, "gzip: "+err.Error())
			return
		}
		body = zr
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		r.refuse(w, "content type "+ct)
		return
	}
	b, err := io.ReadAll(body)
	if err != nil {
		r.refuse(w, "read: "+err.Error())
		return
	}
	var msg coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &msg); err != nil {
		r.refuse(w, "decode: "+err.Error())
		return
	}
	ans := r.next(req.Header, &msg)
	ok := ans.Status == 0 || ans.Status/100 == 2
	if ok {
		r.add(&msg)
	}
	for k, v := range ans.Header {
		w.Header()[k] = v
	}
	out := ans.Body
	switch {
	case out == nil && ok:
		out, _ = proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
	case out == nil:
		out = []byte("scripted failure\n")
		w.Header().Set("Content-Type", "text/plain")
	}
	// No keep-alive: an exporter that was shut down leaves no idle
	// connection (and goroutines) behind for the tests' leak checks.
	w.Header().Set("Connection", "close")
	w.WriteHeader(cmp.Or(ans.Status, http.StatusOK))
	w.Write(out)
}

// next records the request and pops the scripted answer, if any.
func (r *Receiver) next(h http.Header, msg *coltracepb.ExportTraceServiceRequest) Answer {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.headers = append(r.headers, h.Clone())
	r.raw = append(r.raw, msg)
	if len(r.script) == 0 {
		return Answer{}
	}
	a := r.script[0]
	r.script = r.script[1:]
	return a
}

// Requests returns every export request decoded so far (scripted
// failures included), as the real OTLP type.
func (r *Receiver) Requests() []*coltracepb.ExportTraceServiceRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.raw)
}

// Headers returns the HTTP headers of every request decoded so far.
func (r *Receiver) Headers() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.headers)
}

func (r *Receiver) refuse(w http.ResponseWriter, why string) {
	r.mu.Lock()
	r.bad = append(r.bad, why)
	r.mu.Unlock()
	http.Error(w, why, http.StatusBadRequest)
}

func (r *Receiver) add(msg *coltracepb.ExportTraceServiceRequest) {
	var got []Span
	for _, rs := range msg.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				got = append(got, Span{Service: res["service.name"], Resource: res, Attrs: attrs(s.GetAttributes()),
					Name: s.GetName(), Kind: s.GetKind(), TraceID: hex.EncodeToString(s.GetTraceId()),
					SpanID: hex.EncodeToString(s.GetSpanId()), ParentID: hex.EncodeToString(s.GetParentSpanId()),
					Error: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR})
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.mu.Unlock()
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = text(kv.GetValue())
	}
	return m
}

func text(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	}
	return v.String()
}

// Spans returns the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// Trace returns the received spans of trace id traceID.
func (r *Receiver) Trace(traceID string) []Span {
	var out []Span
	for _, s := range r.Spans() {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

// Refused returns why export requests were refused (a wrong content type,
// a body that does not decode), for the test to fail on.
func (r *Receiver) Refused() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bad)
}
