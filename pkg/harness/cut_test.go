package harness

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/testkit"
)

// TestCutResponsesAreLogged checks that a response cut mid-body, by the
// backend or by the client, still gets its access line, marked truncated
// with the side that cut it, and is counted; and that the client sees the
// cut (never a short body that looks whole).
func TestCutResponsesAreLogged(t *testing.T) {
	cutter := StartCuttingBackend()
	defer cutter.Close()
	var logs SyncBuffer
	h := start(t, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		ExtraCatalog: CutApp(cutter.URL)})
	_, port, _ := net.SplitHostPort(h.Meshes()[0].Addr)
	for _, h2 := range []bool{false, true} {
		tr := h.MeshTransport(0)
		tr.ForceAttemptHTTP2 = h2
		resp, err := (&http.Client{Transport: tr}).Get("https://cut.localhost:" + port + "/")
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.StatusCode != 200 || err == nil || n >= 1000000 {
			t.Fatalf("http2=%v: got %d with %d bytes, error %v; want a 200 visibly cut", h2, resp.StatusCode, n, err)
		}
	}
	// The client goes away in the middle of a download.
	resp, err := h.MeshClient(0).Get(h.AppURL(0, "/download?bytes=67108864"))
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 64<<10))
	resp.Body.Close()
	err = WaitFor(t.Context(), 10*time.Second, func() bool {
		return len(testkit.Records(t, logs.String(), map[string]any{"msg": "access", "app": "smartmoney"})) > 0
	})
	if err != nil {
		t.Fatal("no access line for the download the client left")
	}
	check := func(app, side string, want int) {
		t.Helper()
		lines := testkit.Records(t, logs.String(), map[string]any{"msg": "access", "app": app})
		if len(lines) != want {
			t.Fatalf("%s: got %d access lines, want %d:\n%s", app, len(lines), want, logs.String())
		}
		for _, l := range lines {
			if l["truncated"] != true || l["truncated_by"] != side || !strings.Contains(fmt.Sprint(l["error"]), "response cut") || l["status"] != 200.0 {
				t.Errorf("%s: access line %v, want status 200, truncated by %s", app, l, side)
			}
		}
		rec := httptest.NewRecorder()
		h.Meshes()[0].Node.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		metric := fmt.Sprintf(`postern_mesh_responses_truncated_total{app=%q,side=%q} %d`, app, side, want)
		if !strings.Contains(rec.Body.String(), metric) {
			t.Errorf("metrics lack %s", metric)
		}
	}
	check("cut", "upstream", 2)
	check("smartmoney", "client", 1)
}
