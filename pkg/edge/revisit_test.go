package edge

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/pkg/catalog"
)

// fakePath is a Path whose answers, suspicion and loss the test controls.
type fakePath struct {
	name    string
	sends   atomic.Int32
	send    func(n int32, req *http.Request) (*http.Response, error)
	lost    context.Context
	lose    context.CancelFunc
	suspect context.Context
	doubt   context.CancelFunc
}

func newFakePath(name string, send func(n int32, req *http.Request) (*http.Response, error)) *fakePath {
	p := &fakePath{name: name, send: send}
	p.lost, p.lose = context.WithCancel(context.Background())
	p.suspect, p.doubt = context.WithCancel(context.Background())
	return p
}

func (p *fakePath) TryAcquire() bool         { return p.lost.Err() == nil }
func (p *fakePath) Release()                 {}
func (p *fakePath) Lost() context.Context    { return p.lost }
func (p *fakePath) Suspect() context.Context { return p.suspect }
func (p *fakePath) String() string           { return p.name }
func (p *fakePath) Usable() bool             { return p.lost.Err() == nil }
func (p *fakePath) Send(req *http.Request) (*http.Response, error) {
	return p.send(p.sends.Add(1), req)
}

func answer(req *http.Request, body string) *http.Response {
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(body)), Request: req, Header: http.Header{}}
}

// TestSuspectPathRevisited: a GET left on a path that became suspect (a
// late probe, common on a loaded machine) goes elsewhere; when that other
// path is then lost, the request goes back to the suspect one, which was
// never declared lost, instead of failing with 502.
func TestSuspectPathRevisited(t *testing.T) {
	var p1, p2 *fakePath
	p1 = newFakePath("p1", func(n int32, req *http.Request) (*http.Response, error) {
		if n == 1 { // the first attempt waits until abandoned
			p1.doubt()
			<-req.Context().Done()
			return nil, req.Context().Err()
		}
		return answer(req, "p1"), nil
	})
	p2 = newFakePath("p2", func(_ int32, req *http.Request) (*http.Response, error) {
		p2.lose() // the other path dies while the request waits
		<-req.Context().Done()
		return nil, req.Context().Err()
	})
	tr := &tunnelTransport{router: &orderedRouter{paths: []Path{p1, p2}}, maxAttempts: 3}
	st := &reqState{app: &catalog.App{ID: "a", ConnectorGroup: "hq", BackendTimeout: 10 * time.Second}}
	req := httptest.NewRequestWithContext(context.WithValue(t.Context(), stateKey{}, st), "GET", "http://connector/x", nil)
	req.RequestURI = ""
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("got %v; want the suspect path, never lost, to answer", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "p1" || p1.sends.Load() != 2 || p2.sends.Load() != 1 {
		t.Fatalf("answer %q, p1 sent %d, p2 sent %d; want p1's answer after p1, p2, p1", b, p1.sends.Load(), p2.sends.Load())
	}
	// A path declared lost is not revisited.
	p1.lose()
	if c, _ := revisit([]Path{p1}); c != nil {
		t.Fatal("a lost path was revisited")
	}
}
