package meshtest

import (
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/access"
	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/simnet"
)

// TestRelayedTCPApp: a TCP app whose only connector is attached to a node
// of another region is reached through the relay, stream and all: the
// user's node carries the WebSocket, the relay node the in-tunnel stream.
func TestRelayedTCPApp(t *testing.T) {
	echo, err := harness.StartTCPTarget(harness.TargetTransfer)
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	sim := simnet.NewNetwork(simnet.DefaultMatrix(), 1)
	top := &harness.Topology{Net: sim, AttachK: 1,
		Nodes:      []harness.NodeSpec{{ID: "use1", Region: "us-east-1"}, {ID: "euw1", Region: "eu-west-1"}},
		Connectors: []harness.ConnectorSpec{{Group: "hq", Region: "us-east-1"}}}
	logs := &harness.SyncBuffer{}
	h, err := harness.Start(t.Context(), harness.Options{Topology: top, Auth: true, ExtraCatalog: harness.TCPApp("blob", echo.Addr()),
		Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	waitTunnels(t, h)
	euw := h.MeshIndex("euw1")
	if got := h.Meshes()[euw].Node.Pool().Statuses(); len(got) != 0 {
		t.Fatalf("euw1 has local connectors %v: the test needs it to relay", got)
	}
	token, err := h.ClientCredentials(t.Context(), harness.DaemonClientID, harness.DaemonSecret, harness.APIIdentifier+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	c, err := access.New(access.Config{AppURL: h.URLFor(euw, "blob.localhost"), Token: token, HTTPClient: h.UserClient(euw)})
	if err != nil {
		t.Fatal(err)
	}
	var conn net.Conn
	// The relay path appears once the gossip has spread the attachment.
	err = harness.WaitFor(t.Context(), harness.Patience, func() bool {
		cn, err := c.Dial(t.Context())
		if err != nil {
			return false
		}
		conn = cn
		return true
	})
	if err != nil {
		t.Fatal("no stream through the relay")
	}
	defer conn.Close()
	// 4 MiB each way: enough for the losses of a loaded machine to hit a
	// bulk relayed stream. (Before the tunnel's TCP used Reno, such a
	// stream could stall for good there: issue 14.)
	if err := harness.TransferCheck(conn, 4<<20); err != nil {
		t.Fatalf("%v; the log's warnings and stream lines:\n%s", err, notable(logs.String()))
	}
	rec := httptest.NewRecorder()
	h.Meshes()[euw].Node.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `postern_mesh_route_choices_total{kind="relay"}`) {
		t.Error("euw1 did not relay")
	}
}

// notable returns the log lines worth reading when a stream failed:
// warnings, errors, access and stream lines, and every change of a
// connector or relay path (a replaced or removed one cuts the streams
// through it).
func notable(logs string) string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) ||
			strings.Contains(l, `"msg":"access"`) || strings.Contains(l, `"msg":"tcp_stream"`) || strings.Contains(l, "lost") ||
			strings.Contains(l, `"msg":"connector_`) || strings.Contains(l, `"msg":"relay_path_`) || strings.Contains(l, `"msg":"mesh_peer_`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
