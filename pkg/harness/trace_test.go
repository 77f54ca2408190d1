package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/postern/postern/pkg/simnet"
	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/tracing"
	"github.com/postern/postern/pkg/tracing/tracingtest"
)

// seenTrace is what the tracing tests' backend got: its trace headers and
// the request id.
type seenTrace struct {
	Traceparent []string `json:"traceparent"`
	Tracestate  []string `json:"tracestate"`
	RequestID   string   `json:"request_id"`
}

// newTraceBackend starts the internal app of the tracing tests, which
// answers with the trace headers it got.
func newTraceBackend(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(seenTrace{Traceparent: r.Header.Values("Traceparent"), Tracestate: r.Header.Values("Tracestate"),
			RequestID: r.Header.Get("X-Request-Id")})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// tracedSystem is the relay system (client → node A → node B → connector
// → backend) with tracing on, exporting to an in-process OTLP receiver,
// and two apps of the relay group: "traced" (the default: client trace
// headers untrusted) and "trusted" (trust_trace_headers: true).
type tracedSystem struct {
	h     *Harness
	recv  *tracingtest.Receiver
	logs  *SyncBuffer
	audit *SyncBuffer
}

func startTraced(t *testing.T) *tracedSystem {
	t.Helper()
	backend := newTraceBackend(t)
	s := &tracedSystem{recv: tracingtest.NewReceiver(t), logs: &SyncBuffer{}, audit: &SyncBuffer{}}
	extra := fmt.Sprintf("  - id: traced\n    host: traced.localhost\n    internal_url: %[1]s\n    connector_group: %[2]s\n    preauth: passthrough\n"+
		"  - id: trusted\n    host: trusted.localhost\n    internal_url: %[1]s\n    connector_group: %[2]s\n    preauth: passthrough\n    trust_trace_headers: true\n",
		backend.URL, RelayGroup)
	s.h = start(t, Options{Topology: RelayTopology(simnet.NewNetwork(ZeroMatrix(), 1)), ExtraCatalog: extra,
		Tracing: &tracing.Config{Endpoint: s.recv.URL, Sampler: sdktrace.AlwaysSample(), BatchTimeout: 100 * time.Millisecond},
		Logger:  slog.New(slog.NewJSONHandler(s.logs, nil)), Audit: s.audit})
	if err := s.h.WaitConverged(t.Context(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.h.CheckRelay(); err != nil {
		t.Fatal(err)
	}
	return s
}

// send GETs path of app host through node A with the given extra header
// lines (each "Name: value", repeated names allowed) and returns what the
// backend saw.
func (s *tracedSystem) send(t *testing.T, host string, hdr ...string) seenTrace {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", "https://"+host+":"+portOf(s.h, 0)+"/trace", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range hdr {
		k, v, _ := strings.Cut(l, ": ")
		req.Header.Add(k, v)
	}
	resp, err := s.h.MeshClient(0).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d %q, want 200", resp.StatusCode, body)
	}
	var seen seenTrace
	if err := json.Unmarshal(body, &seen); err != nil {
		t.Fatalf("backend answer %q: %v", body, err)
	}
	return seen
}

// canonicalTP matches a version-00 traceparent as Postern sends it.
var canonicalTP = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-0[0-3]$`)

// parentOf returns the trace and span id of the one canonical traceparent
// the backend saw, failing the test on anything else.
func parentOf(t *testing.T, seen seenTrace) (traceID, spanID string) {
	t.Helper()
	if len(seen.Traceparent) != 1 {
		t.Fatalf("backend got traceparent %q, want exactly one", seen.Traceparent)
	}
	m := canonicalTP.FindStringSubmatch(seen.Traceparent[0])
	if m == nil {
		t.Fatalf("backend got traceparent %q, want a canonical version-00 one", seen.Traceparent[0])
	}
	return m[1], m[2]
}

// chain is the span names of a relayed request, in the order of the
// hops, with the service and node that must record each.
var relayedSpans = []struct{ name, service, node string }{
	{"edge", "meshd", RelayNodeA}, {"relay", "meshd", RelayNodeB},
	{"connector", "connectord", ""}, {"backend", "connectord", ""},
}

// waitTrace waits until the receiver holds every span of a relayed
// request of trace traceID, and returns them keyed "name@node".
func (s *tracedSystem) waitTrace(t *testing.T, traceID string) map[string]tracingtest.Span {
	t.Helper()
	var got map[string]tracingtest.Span
	err := WaitFor(t.Context(), 30*time.Second, func() bool {
		got = map[string]tracingtest.Span{}
		for _, sp := range s.recv.Trace(traceID) {
			node := sp.Resource["postern.node"]
			if sp.Service == "connectord" {
				node = ""
			}
			got[sp.Name+"@"+node] = sp
		}
		for _, w := range relayedSpans {
			if _, ok := got[w.name+"@"+w.node]; !ok {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("trace %s: got spans %v, want %v (receiver refused: %v)", traceID, keys(got), relayedSpans, s.recv.Refused())
	}
	return got
}

func keys(m map[string]tracingtest.Span) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestTraceRelayed sends a request through the relay system with tracing
// on and checks the trace the OTLP receiver got: one trace across node A,
// node B and the connector with the parent/child chain of the hops, whose
// last span is the parent the backend saw in traceparent; and the trace id
// beside the request id in both nodes' access lines and in the audit
// record. Then it checks which client trace headers each app trusts.
func TestTraceRelayed(t *testing.T) {
	s := startTraced(t)
	const clientTrace, clientSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	clientTP := "00-" + clientTrace + "-" + clientSpan + "-01"

	t.Run("relayed chain", func(t *testing.T) {
		seen := s.send(t, "traced.localhost", "Traceparent: "+clientTP, "Tracestate: forged=1")
		traceID, parent := parentOf(t, seen)
		if traceID == clientTrace {
			t.Fatal("the untrusted client chose the trace id")
		}
		if len(seen.Tracestate) != 0 {
			t.Errorf("backend got the untrusted client's tracestate %q", seen.Tracestate)
		}
		sp := s.waitTrace(t, traceID)
		parentIs := func(child, parent string) {
			t.Helper()
			if got, want := sp[child].ParentID, sp[parent].SpanID; got != want {
				t.Errorf("%s: got parent %q, want %s's span %q", child, got, parent, want)
			}
		}
		if p := sp["edge@A"].ParentID; p != "" {
			t.Errorf("edge: got parent %q, want a root (the client's traceparent is not trusted for this app)", p)
		}
		parentIs("relay@B", "edge@A") // an attempt through the tunnel is no span of its own
		parentIs("connector@", "relay@B")
		parentIs("backend@", "connector@")
		if got := sp["backend@"].SpanID; got != parent {
			t.Errorf("backend saw parent span %s, want the connector's backend span %s", parent, got)
		}
		for k, kind := range map[string]tracepb.Span_SpanKind{"edge@A": tracepb.Span_SPAN_KIND_SERVER, "relay@B": tracepb.Span_SPAN_KIND_SERVER,
			"connector@": tracepb.Span_SPAN_KIND_SERVER, "backend@": tracepb.Span_SPAN_KIND_CLIENT} {
			if sp[k].Kind != kind {
				t.Errorf("%s: got kind %v, want %v", k, sp[k].Kind, kind)
			}
		}
		for _, w := range relayedSpans {
			if got := sp[w.name+"@"+w.node].Service; got != w.service {
				t.Errorf("%s@%s: got service %q, want %q", w.name, w.node, got, w.service)
			}
		}
		edge := sp["edge@A"]
		if edge.Attrs["postern.request_id"] != seen.RequestID || edge.Attrs["postern.app"] != "traced" || edge.Attrs["http.response.status_code"] != "200" {
			t.Errorf("edge attributes %v, want request id %s, app traced, status 200", edge.Attrs, seen.RequestID)
		}
		for _, k := range []string{"edge@A", "relay@B"} {
			if got := sp[k].Attrs["postern.connector"]; got == "" {
				t.Errorf("%s names no path that answered (postern.connector)", k)
			}
		}
		if len(sp) != len(relayedSpans) {
			t.Errorf("got spans %v, want %d: one per hop", keys(sp), len(relayedSpans))
		}
		if got := edge.Attrs["postern.decision"]; got != "allow" {
			t.Errorf("edge: got decision %q, want allow", got)
		}
		checkTraceInLogs(t, s, seen.RequestID, traceID)
		// The request lines, which carry the trace ids, match the
		// documented schema (TestLogSchema runs with tracing off).
		var lines []map[string]any
		for _, r := range testkit.Records(t, s.logs.String(), nil) {
			if r["msg"] == "access" || r["msg"] == "request" {
				lines = append(lines, r)
			}
		}
		if seen := checkLogSchema(t, logSchema(t), lines); !seen["access"] || !seen["request"] {
			t.Errorf("no access or request line in the run: got %v", seen)
		}
	})

	t.Run("trusted app continues the client's trace", func(t *testing.T) {
		seen := s.send(t, "trusted.localhost", "Traceparent: "+clientTP, "Tracestate: vendor=abc")
		traceID, _ := parentOf(t, seen)
		if traceID != clientTrace {
			t.Fatalf("backend got trace %s, want the client's %s", traceID, clientTrace)
		}
		if got := strings.Join(seen.Tracestate, ","); got != "vendor=abc" {
			t.Errorf("backend got tracestate %q, want the client's vendor=abc", got)
		}
		sp := s.waitTrace(t, clientTrace)
		if got := sp["edge@A"].ParentID; got != clientSpan {
			t.Errorf("edge: got parent %q, want the client's span %s", got, clientSpan)
		}
	})

	hostile := []struct {
		name string
		hdr  []string
	}{
		{"huge", []string{"Traceparent: " + clientTP + strings.Repeat("-0", 16<<10)}},
		{"repeated", []string{"Traceparent: " + clientTP, "Traceparent: 00-" + strings.Repeat("1", 32) + "-" + clientSpan + "-01"}},
		{"comma-joined", []string{"Traceparent: " + clientTP + "," + clientTP}},
		{"zero trace id", []string{"Traceparent: 00-" + strings.Repeat("0", 32) + "-" + clientSpan + "-01"}},
		{"version ff", []string{"Traceparent: ff-" + clientTrace + "-" + clientSpan + "-01"}},
		{"garbage", []string{"Traceparent: <script>alert(1)</script>"}},
		{"lower-case name", []string{"traceparent: 00-" + strings.Repeat("z", 32) + "-" + clientSpan + "-01"}},
		{"huge tracestate alone", []string{"Tracestate: k=" + strings.Repeat("v", 32<<10)}},
	}
	for _, app := range []string{"traced", "trusted"} {
		for _, tc := range hostile {
			t.Run(app+"/hostile "+tc.name, func(t *testing.T) {
				seen := s.send(t, app+".localhost", tc.hdr...)
				traceID, _ := parentOf(t, seen) // a fresh trace of the mesh's, canonical
				if traceID == clientTrace || traceID == strings.Repeat("1", 32) {
					t.Errorf("backend got the client's trace id %s", traceID)
				}
				for _, v := range seen.Tracestate {
					if len(v) > 512 || strings.Contains(v, "vvvv") {
						t.Errorf("backend got the client's tracestate (%d bytes)", len(v))
					}
				}
				s.waitTrace(t, traceID)
			})
		}
	}
}

// checkTraceInLogs checks that both nodes' access lines of request rid,
// the connector's request line and node A's audit record of it carry
// trace id traceID.
func checkTraceInLogs(t *testing.T, s *tracedSystem, rid, traceID string) {
	t.Helper()
	err := WaitFor(t.Context(), 10*time.Second, func() bool {
		n := map[any]int{}
		for _, l := range jsonLines(s.logs.String()) {
			if l["request_id"] == rid && l["trace_id"] == traceID {
				n[l["msg"]]++
			}
		}
		return n["access"] == 2 && n["request"] == 1
	})
	if err != nil {
		t.Errorf("want two access lines (node A and relay node B) and the connector's request line of request %s with trace_id %s; the log has:\n%s",
			rid, traceID, grepLines(s.logs.String(), rid))
	}
	var audited bool
	for _, l := range jsonLines(s.audit.String()) {
		if l["msg"] == "access_decision" && l["request_id"] == rid {
			audited = l["trace_id"] == traceID
		}
	}
	if !audited {
		t.Errorf("no audit record of request %s with trace_id %s:\n%s", rid, traceID, grepLines(s.audit.String(), rid))
	}
}

func jsonLines(s string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}
