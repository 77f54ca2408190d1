package harness

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/reqid"
	"github.com/postern/postern/pkg/simnet"
	"github.com/postern/postern/pkg/testkit"
)

// logSchema reads the log key table of docs/logs.md: key → JSON type.
func logSchema(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../../docs/logs.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `([a-z_]+)` \\| (string|number|bool|array|object) \\|")
	schema := map[string]string{}
	in := false
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "<!-- schema"):
			in = true
		case in && line == "":
			if len(schema) > 0 {
				return schema
			}
		case in:
			if m := row.FindStringSubmatch(line); m != nil {
				schema[m[1]] = m[2]
			}
		}
	}
	if len(schema) < 10 {
		t.Fatalf("docs/logs.md: schema table not found (%d keys)", len(schema))
	}
	return schema
}

func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case nil:
		return "null"
	}
	return "object"
}

var eventName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// TestLogSchema runs a sign-in, an allowed and a denied request and an
// unknown host through every component with one JSON log, and checks every
// line against docs/logs.md: only documented keys, each with its type
// (null allowed for arrays), snake_case event names for Postern's own
// lines, request ids of the one format, and none of the old aliases.
func TestLogSchema(t *testing.T) {
	schema := logSchema(t)
	buf := &SyncBuffer{}
	h := start(t, Options{Auth: true, Logger: slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	c := browserish(t, h)
	if resp, _ := navigate(t, c, h.AppURL(0, "/headers"), "alice", ""); resp.StatusCode != 200 {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	if resp, _ := navigate(t, c, h.AppURL(0, "/admin"), "", ""); resp.StatusCode != 403 {
		t.Fatalf("/admin: %d", resp.StatusCode)
	}
	if resp, _ := navigate(t, c, strings.Replace(h.AppURL(0, "/"), "smartmoney", "nothing-here", 1), "", ""); resp.StatusCode != 404 {
		t.Fatalf("unknown host: %d", resp.StatusCode)
	}
	seen := checkLogSchema(t, schema, testkit.Records(t, buf.String(), nil))
	// The run must have produced the lines this test is about.
	for _, m := range []string{"access", "auth_signed_in", "auth_handoff", "request", "api_request", "connector_attached"} {
		if !seen[m] {
			t.Errorf("no %q line in the run: the test checked less than it claims", m)
		}
	}
	for _, alias := range []string{"remote_ip", "sub", "connector_id", "rid", "requestId", "user_id"} {
		if _, ok := schema[alias]; ok {
			t.Errorf("docs/logs.md documents the old alias %q", alias)
		}
	}
}

// checkLogSchema checks log records against schema (see TestLogSchema)
// and returns the events seen.
func checkLogSchema(t *testing.T, schema map[string]string, records []map[string]any) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range records {
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := r[k].(string); !ok {
				t.Errorf("line %v lacks %s", r, k)
			}
		}
		msg, _ := r["msg"].(string)
		if r["component"] != "wireguard" && r["service"] != "devidp" && !eventName.MatchString(msg) {
			t.Errorf("event name %q is not snake_case: %v", msg, r)
		}
		seen[msg] = true
		for k, v := range r {
			want, ok := schema[k]
			if !ok {
				t.Errorf("key %q (in %q) is not in docs/logs.md", k, msg)
				continue
			}
			if got := jsonType(v); got != want && !(got == "null" && want == "array") {
				t.Errorf("key %q is %s in %q, docs/logs.md says %s", k, got, msg, want)
			}
		}
		if id, ok := r["request_id"].(string); ok && !reqid.Valid(id) {
			t.Errorf("request id %q in %q is not of the one format", id, msg)
		}
		if id, ok := r["trace_id"].(string); ok && !traceID.MatchString(id) {
			t.Errorf("trace id %q in %q is not 32 lower-case hex digits", id, msg)
		}
	}
	return seen
}

// traceID is the form of a W3C trace id, as the logs write it.
var traceID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestLogSchemaCluster is TestLogSchema across a cluster: two gossiping
// mesh nodes (debug level) and a connector attached to one of them, a
// request relayed from the other through the tunnel, and the audit
// stream. Every log line and every audit record is checked against
// docs/logs.md; the gossip's, the mesh peers', the relay's and the
// audit's lines must be among them.
func TestLogSchemaCluster(t *testing.T) {
	schema := logSchema(t)
	backend := newTraceBackend(t)
	logs, audit := &SyncBuffer{}, &SyncBuffer{}
	extra := fmt.Sprintf("  - id: traced\n    host: traced.localhost\n    internal_url: %s\n    connector_group: %s\n    preauth: passthrough\n", backend.URL, RelayGroup)
	h := start(t, Options{Topology: RelayTopology(simnet.NewNetwork(ZeroMatrix(), 1)), ExtraCatalog: extra,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Audit: audit})
	if err := h.WaitConverged(t.Context(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := h.CheckRelay(); err != nil {
		t.Fatal(err)
	}
	s := &tracedSystem{h: h, logs: logs, audit: audit}
	seen := s.send(t, "traced.localhost")
	// The relaying node's access line is written after the response.
	testkit.WaitFor(t, 30*time.Second, "the relayed request's access lines", func() bool {
		return strings.Count(logs.String(), seen.RequestID) >= 3
	})
	got := checkLogSchema(t, schema, testkit.Records(t, logs.String(), nil))
	for _, m := range []string{"access", "request", "gossip_listening", "gossip_member_joined", "mesh_peer_added", "connector_attached"} {
		if !got[m] {
			t.Errorf("no %q line in the run: the test checked less than it claims", m)
		}
	}
	relayed := false
	for _, r := range testkit.Records(t, logs.String(), nil) {
		if r["msg"] == "access" && r["request_id"] == seen.RequestID && r["relayed"] == true {
			relayed = true
		}
	}
	if !relayed {
		t.Error("no access line of the request says it was relayed")
	}
	if got := checkLogSchema(t, schema, testkit.Records(t, audit.String(), nil)); !got["access_decision"] {
		t.Errorf("no access_decision record in the audit stream: %v", got)
	}
}
