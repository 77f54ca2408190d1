package harness

import (
	"fmt"
	"net/http"
	"net/http/httptest"
)

// StartCuttingBackend starts a backend on loopback that answers every
// request with a 200 announcing 1,000,000 bytes, sends 100,000 of them and
// dies: a response cut mid-body on the backend's side. The caller closes
// it.
func StartCuttingBackend() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.Write(make([]byte, 100000))
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // the backend dies mid-body
	}))
}

// CutApp returns the catalogue entry (for Options.ExtraCatalog) of a
// passthrough app "cut" at cut.localhost served by the backend at url.
func CutApp(url string) string {
	return fmt.Sprintf("  - id: cut\n    host: cut.localhost\n    internal_url: %s\n    connector_group: hq\n    preauth: passthrough\n", url)
}
