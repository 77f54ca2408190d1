package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/tunnelhttp"
)

// connectorPath is a fakePath that ends at a connector.
type connectorPath struct{ *fakePath }

func (connectorPath) EndsAtConnector() {}

// identityConnector answers tunnel requests as a connector does: with the
// identity protocol (holds) or without it (an older connector, which
// strips HeaderIdentity like any Postern- header). It records the
// identity headers its backend got and the HeaderIdentity forms it saw.
type identityConnector struct {
	holds bool
	mu    sync.Mutex
	held  map[string][]string // digest -> values
	forms []string            // "plain", "full", "ref" per request seen
	seen  []string            // the backend's X-User per request it got
}

func (f *identityConnector) send(_ int32, req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := req.Header.Clone()
	resp := answer(req, "ok")
	v := h.Get(tunnelhttp.HeaderIdentity)
	form := "plain"
	if v != "" {
		form = "full"
		if !strings.Contains(v, " ") {
			form = "ref"
		}
	}
	f.forms = append(f.forms, form)
	if f.holds && v != "" {
		digest, names, err := tunnelhttp.ParseIdentity(v)
		if err != nil {
			return nil, err
		}
		if names == nil {
			vals, ok := f.held[digest]
			if !ok {
				resp.StatusCode = http.StatusPreconditionFailed
				resp.Header.Set(tunnelhttp.HeaderError, tunnelhttp.ErrIdentityUnknown)
				return resp, nil
			}
			h.Set("X-User", vals[0])
			f.seen = append(f.seen, h.Get("X-User"))
			return resp, nil // held: not said again
		} else {
			vals, err := tunnelhttp.IdentityValues(h, req.Header.Get(tunnelhttp.HeaderApp), digest, names)
			if err != nil {
				return nil, err
			}
			f.held[digest] = vals
		}
		resp.Header.Set(tunnelhttp.HeaderIdentity, digest)
	}
	f.seen = append(f.seen, h.Get("X-User"))
	return resp, nil
}

func (f *identityConnector) take() (forms, seen []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	forms, seen, f.forms, f.seen = f.forms, f.seen, nil, nil
	return forms, seen
}

// TestIdentityForms: the transport sends an identity block in full until
// the connector says it holds it, then by reference; a reference the
// connector no longer holds is sent again in full at once; a connector
// that never says so (an older one), a relay, and a request with a body
// always get the headers themselves.
func TestIdentityForms(t *testing.T) {
	app := &catalog.App{ID: "a", ConnectorGroup: "hq", BackendTimeout: 10 * time.Second}
	send := func(tr *tunnelTransport, method string, body string) error {
		t.Helper()
		st := &reqState{app: app}
		st.ident.names[0], st.ident.names[1] = "X-User", "X-Postern-Assertion"
		st.ident.values = []string{"alice", "eyJ.a.b"}
		var r *strings.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		var req *http.Request
		if r != nil {
			req = httptest.NewRequestWithContext(context.WithValue(t.Context(), stateKey{}, st), method, "http://connector/x", r)
		} else {
			req = httptest.NewRequestWithContext(context.WithValue(t.Context(), stateKey{}, st), method, "http://connector/x", nil)
		}
		req.RequestURI = ""
		req.Header.Set(tunnelhttp.HeaderApp, app.ID)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return nil
	}
	check := func(f *identityConnector, step string, wantForms ...string) {
		t.Helper()
		forms, seen := f.take()
		if strings.Join(forms, ",") != strings.Join(wantForms, ",") {
			t.Errorf("%s: forms %v, want %v", step, forms, wantForms)
		}
		for _, s := range seen {
			if s != "alice" {
				t.Errorf("%s: the backend got X-User %q", step, s)
			}
		}
	}

	newer := &identityConnector{holds: true, held: map[string][]string{}}
	p := connectorPath{newFakePath("c1", newer.send)}
	tr := &tunnelTransport{router: &orderedRouter{paths: []Path{p}}, maxAttempts: 3, ids: newIdentityMemo(time.Now)}
	for range 3 {
		if err := send(tr, "GET", ""); err != nil {
			t.Fatal(err)
		}
	}
	check(newer, "new connector", "full", "ref", "ref")
	if err := send(tr, "POST", "body"); err != nil {
		t.Fatal(err)
	}
	check(newer, "with a body", "full")
	clear(newer.held) // restarted, or dropped the block
	if err := send(tr, "GET", ""); err != nil {
		t.Fatal(err)
	}
	if forms, seen := newer.take(); strings.Join(forms, ",") != "ref,full" || len(seen) != 1 || seen[0] != "alice" {
		t.Errorf("block dropped: forms %v, backend got %v; want ref,full and one request as alice", forms, seen)
	}

	older := &identityConnector{}
	tr = &tunnelTransport{router: &orderedRouter{paths: []Path{connectorPath{newFakePath("c2", older.send)}}}, maxAttempts: 3, ids: newIdentityMemo(time.Now)}
	for range 3 {
		if err := send(tr, "GET", ""); err != nil {
			t.Fatal(err)
		}
	}
	check(older, "older connector", "full", "full", "full")

	relay := &identityConnector{holds: true, held: map[string][]string{}}
	tr = &tunnelTransport{router: &orderedRouter{paths: []Path{newFakePath("relay", relay.send)}}, maxAttempts: 3, ids: newIdentityMemo(time.Now)}
	for range 2 {
		if err := send(tr, "GET", ""); err != nil {
			t.Fatal(err)
		}
	}
	check(relay, "relay", "plain", "plain")

	// A reference that fails before reaching its connector goes to a
	// relay next, with the headers themselves.
	failing := newFakePath("c3", func(n int32, req *http.Request) (*http.Response, error) {
		if n == 1 {
			return newer.send(n, req)
		}
		newer.take()
		return nil, errors.New("dial failed")
	})
	relay2 := &identityConnector{}
	tr = &tunnelTransport{router: &orderedRouter{paths: []Path{connectorPath{failing}, newFakePath("relay2", relay2.send)}}, maxAttempts: 3, ids: newIdentityMemo(time.Now)}
	clear(newer.held)
	if err := send(tr, "GET", ""); err != nil { // held by c3
		t.Fatal(err)
	}
	newer.take()
	if err := send(tr, "GET", ""); err != nil {
		t.Fatal(err)
	}
	check(relay2, "after a failed reference", "plain")
}

// TestIdentityMemoForgetsLostPath: what a connector instance held is
// forgotten when it is lost (replaced, or declared dead).
func TestIdentityMemoForgetsLostPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newIdentityMemo(time.Now)
		p := newFakePath("c", nil)
		m.hold(p, "d")
		if !m.held(p, "d") {
			t.Fatal("not held")
		}
		p.lose()
		synctest.Wait() // the loss's AfterFunc has run
		m.mu.Lock()
		n := len(m.paths)
		m.mu.Unlock()
		if m.held(p, "d") || n != 0 {
			t.Fatalf("a lost path's blocks are still remembered (%d paths)", n)
		}
	})
}

// TestIdentityMemoExpires: a block is sent by reference only for memoFor
// after the connector last said it held it, and the memo of one path is
// bounded.
func TestIdentityMemoExpires(t *testing.T) {
	now := time.Unix(0, 0)
	m := newIdentityMemo(func() time.Time { return now })
	p := newFakePath("c", nil)
	m.hold(p, "d")
	now = now.Add(memoFor - time.Second)
	if !m.held(p, "d") {
		t.Fatal("forgotten too early")
	}
	now = now.Add(2 * time.Second)
	if m.held(p, "d") {
		t.Fatal("still sent by reference after memoFor")
	}
	for i := range memoBlocks + 10 {
		m.hold(p, strings.Repeat("x", i%50)+string(rune('a'+i%26))+time.Duration(i).String())
	}
	m.mu.Lock()
	n := len(m.paths[p])
	m.mu.Unlock()
	if n > memoBlocks {
		t.Fatalf("%d blocks remembered, bound %d", n, memoBlocks)
	}
}

func TestHeaderSafe(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"Alice Adams":            "Alice Adams",
		"Zoë 名前":                 "Zoë 名前",
		"a\r\nX-Evil: 1":         "aX-Evil: 1",
		"\x00a\x1fb\x7fc\td":     "abcd",
		"tab\tin\x7f":            "tabin",
		"ok\u0085next-line-kept": "ok\u0085next-line-kept",
	} {
		if got := headerSafe(in); got != want {
			t.Errorf("headerSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// countingSigner signs assertions "jwt-N", counting them.
type countingSigner struct{ n atomic.Int32 }

func (s *countingSigner) SignAssertion(id session.Identity, audience string, _ time.Duration) (string, error) {
	return fmt.Sprintf("jwt-%d-%s-%s", s.n.Add(1), id.Subject, audience), nil
}

// TestIdentityBlockReused: a block is built once per token and app while
// its assertion is reused, again when the assertion is past half its
// life, and again (same assertion) for a reloaded catalogue's app, whose
// headers may have changed.
func TestIdentityBlockReused(t *testing.T) {
	now := time.Unix(1000, 0)
	signer := &countingSigner{}
	a := newAuth(&AuthConfig{Assertions: signer}, func() time.Time { return now })
	app := &catalog.App{ID: "a", Host: "a.example", IdentityHeaders: catalog.DefaultIdentityHeaders}
	id := &session.Identity{Subject: "tid/oid", Email: "al@example.com", Groups: []string{"g1", "g2"}}
	st := func(app *catalog.App, tok string) *reqState { return &reqState{app: app, id: id, token: tok, auth: a} }
	b1 := a.identityFor(st(app, "tok"))
	if b2 := a.identityFor(st(app, "tok")); b2 != b1 || signer.n.Load() != 1 {
		t.Fatalf("block rebuilt (%v) or assertion signed again (%d signatures)", b2 != b1, signer.n.Load())
	}
	if len(b1.digest) != 1 || b1.digest[0] != tunnelhttp.IdentityDigest("a", b1.Names(), b1.values) {
		t.Fatal("a shared block without its digest")
	}
	if b := a.identityFor(st(app, "other-token")); b == b1 || signer.n.Load() != 2 {
		t.Fatal("another token's block reused")
	}
	reloaded := *app
	reloaded.IdentityHeaders.Email = "X-Mail"
	b3 := a.identityFor(st(&reloaded, "tok"))
	if b3 == b1 || signer.n.Load() != 2 || b3.values[len(b3.values)-1] != b1.values[len(b1.values)-1] {
		t.Fatal("a reloaded app's block not rebuilt with the same assertion")
	}
	if !slices.Contains(b3.Names(), "X-Mail") || slices.Contains(b3.Names(), "X-Postern-Email") {
		t.Fatalf("reloaded app's names %v", b3.Names())
	}
	now = now.Add(3 * time.Minute) // past half of the 5-minute assertion
	if b4 := a.identityFor(st(&reloaded, "tok")); b4 == b3 || signer.n.Load() != 3 || b4.Digest("a") == b3.Digest("a") {
		t.Fatal("the assertion was not renewed past half its life")
	}
}
