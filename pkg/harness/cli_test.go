package harness

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/simnet"
	"github.com/postern/postern/pkg/testkit"
)

// buildCommand builds the module's command at pkg ("./meshd") into a
// temporary directory and returns its path.
func buildCommand(tb testing.TB, pkg string) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, "../../"+strings.TrimPrefix(pkg, "./")).CombinedOutput(); err != nil {
		tb.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// runCommand runs bin with args and returns its standard output and
// error, and whether it exited 0.
func runCommand(tb testing.TB, bin string, args ...string) (stdout, stderr string, ok bool) {
	tb.Helper()
	cmd := exec.CommandContext(tb.Context(), bin, args...)
	var o, e SyncBuffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	return o.String(), e.String(), err == nil
}

// TestMeshdStatusAndExplain runs "meshd status" and "meshd route explain"
// against the demo's topology (two nodes in two regions, both connectors
// attached to the first): the status is a table with units by default and
// JSON with [] for empty lists on --json; the explanation on the second
// node lists every path it knows (both connectors behind the relay node).
func TestMeshdStatusAndExplain(t *testing.T) {
	meshd := buildCommand(t, "./meshd")
	admins := []string{testkit.FreeAddr(t), testkit.FreeAddr(t)}
	top := &Topology{Net: simnet.NewNetwork(simnet.DefaultMatrix().Scale(0.1), 1), AttachK: 1,
		Nodes:      []NodeSpec{{ID: "mesh-us-east-1", Region: "us-east-1"}, {ID: "mesh-eu-west-1", Region: "eu-west-1"}},
		Connectors: []ConnectorSpec{{Group: "hq", Region: "us-east-1"}, {Group: "hq", Region: "us-east-1"}}}
	h := start(t, Options{Topology: top, AdminAddrs: admins})
	if err := h.WaitConverged(t.Context(), 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	out, errOut, ok := runCommand(t, meshd, "status", "--admin", admins[1])
	if !ok {
		t.Fatalf("meshd status: %s", errOut)
	}
	for _, want := range []string{"node mesh-eu-west-1, region eu-west-1", "connectors attached here:\n  none",
		"mesh nodes:", "mesh-us-east-1", "RTT ESTIMATE", " ms", "attachments (through the gossip):", "routes ", "hq"} {
		if !strings.Contains(out, want) {
			t.Errorf("status table lacks %q:\n%s", want, out)
		}
	}
	out, errOut, ok = runCommand(t, meshd, "status", "--admin", admins[1], "--json")
	if !ok {
		t.Fatalf("meshd status --json: %s", errOut)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if c, isList := st["connectors"].([]any); !isList || len(c) != 0 {
		t.Errorf("connectors of a node without any: got %v, want []", st["connectors"])
	}
	mesh, _ := st["mesh"].(map[string]any)
	atts, _ := mesh["attachments"].([]any)
	if len(atts) != 2 {
		t.Fatalf("attachments: got %v, want 2", mesh["attachments"])
	}
	if a := atts[0].(map[string]any); a["rtt_ms"] == nil || a["node"] != "mesh-us-east-1" {
		t.Errorf("attachment: got %v, want snake_case keys with rtt_ms", a)
	}
	// The first node's own connectors carry rtt_ms, not nanoseconds.
	out, _, _ = runCommand(t, meshd, "status", "--admin", admins[0], "--json")
	if !strings.Contains(out, `"rtt_ms"`) || strings.Contains(out, "rtt_ns") {
		t.Errorf("first node's status: want rtt_ms and no rtt_ns:\n%s", out)
	}
	out, errOut, ok = runCommand(t, meshd, "route", "explain", "--admin", admins[1], "--app", "smartmoney")
	if !ok {
		t.Fatalf("route explain: %s", errOut)
	}
	for _, c := range h.Connectors() {
		if !strings.Contains(out, c.C.ID()) {
			t.Errorf("explanation lacks the path to connector %s:\n%s", c.C.ID(), out)
		}
	}
	if strings.Count(out, "\n*  mesh-us-east-1") != 2 {
		t.Errorf("want both paths through mesh-us-east-1 taking requests:\n%s", out)
	}
	if _, errOut, ok = runCommand(t, meshd, "route", "explain", "--admin", admins[1], "--app", "nope"); ok || !strings.Contains(errOut, "no such app") {
		t.Errorf("unknown app: got ok=%v %q, want an error naming it", ok, errOut)
	}
	if _, errOut, ok = runCommand(t, meshd, "status", "--admin", testkit.FreeAddr(t)); ok || !strings.Contains(errOut, "is a node running with --admin") {
		t.Errorf("nothing listening: got ok=%v %q, want a hint", ok, errOut)
	}
}

// TestExplainLoneNode: a node outside any cluster explains its route too:
// every connector of the group attached to it.
func TestExplainLoneNode(t *testing.T) {
	h := start(t, Options{Connectors: 2})
	ex, err := h.Meshes()[0].Node.Explain("smartmoney")
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.Paths) != 2 || !ex.Paths[0].Chosen || !ex.Paths[1].Chosen || ex.Paths[0].Via != "local" {
		t.Errorf("got %+v, want both local connectors taking requests", ex.Paths)
	}
}

// TestMeshdTokenCreateChecksCatalogue: "meshd token create" mints only for
// a group of the catalogue, and says which flag to fix otherwise.
func TestMeshdTokenCreateChecksCatalogue(t *testing.T) {
	meshd := buildCommand(t, "./meshd")
	dir := t.TempDir()
	key, cat := filepath.Join(dir, "authority.key"), filepath.Join(dir, "catalog.yaml")
	if _, errOut, ok := runCommand(t, meshd, "authority", "init", "--out", key); !ok {
		t.Fatal(errOut)
	}
	os.WriteFile(cat, []byte("connector_groups:\n  - id: hq\n  - id: dc2\napps: []\n"), 0o644)
	out, errOut, ok := runCommand(t, meshd, "token", "create", "--authority-key", key, "--catalog", cat, "--group", "hq")
	if !ok || len(strings.TrimSpace(out)) < 20 {
		t.Fatalf("group in the catalogue: got ok=%v %q %q, want a token", ok, out, errOut)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"group not in the catalogue", []string{"--catalog", cat, "--group", "nope"}, `connector group "nope" is not in the catalogue ` + cat + " (it has: hq, dc2)"},
		{"catalogue missing", []string{"--catalog", filepath.Join(dir, "none.yaml"), "--group", "hq"}, "--catalog names the mesh's catalogue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, ok := runCommand(t, meshd, append([]string{"token", "create", "--authority-key", key}, tt.args...)...)
			if ok || out != "" || !strings.Contains(errOut, tt.want) {
				t.Errorf("got ok=%v stdout %q stderr %q, want a refusal with %q and no token", ok, out, errOut, tt.want)
			}
		})
	}
}
