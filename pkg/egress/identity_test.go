package egress

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/pkg/tunnelhttp"
)

func TestIdentityStore(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newIdentityStore(3*(blockOverhead+43+1+2), time.Minute, func() time.Time { return now })
	put := func(d string) { s.put(d, "a", []string{"X"}, []string{"v"}) }
	dig := func(i byte) string { return strings.Repeat(string('A'+i), 43) }
	for i := range byte(3) {
		put(dig(i))
	}
	if n, _ := s.stats(); n != 3 {
		t.Fatalf("held %d blocks, want 3", n)
	}
	if s.get(dig(0), "a") == nil {
		t.Fatal("block 0 not held")
	}
	if s.get(dig(0), "b") != nil {
		t.Fatal("a block was expanded for another app")
	}
	put(dig(3)) // past the bound: the least recently used (1) goes
	if s.get(dig(1), "a") != nil || s.get(dig(0), "a") == nil || s.get(dig(3), "a") == nil {
		t.Fatal("not the least recently used block evicted")
	}
	if _, size := s.stats(); size > s.max {
		t.Fatalf("holds %d bytes, bound %d", size, s.max)
	}
	now = now.Add(59 * time.Second)
	if s.get(dig(3), "a") == nil {
		t.Fatal("a block used a minute ago was dropped")
	}
	now = now.Add(59 * time.Second)
	if s.get(dig(0), "a") != nil || s.get(dig(2), "a") != nil {
		t.Fatal("idle blocks kept")
	}
	if s.get(dig(3), "a") == nil {
		t.Fatal("the block used 59 s ago was dropped")
	}
}

// TestIdentityByReference: a block sent in full reaches the backend and
// is held (the answer says so); a reference then gives the backend the
// same headers; a reference to a block not held, or held for another app,
// is answered identity_unknown without reaching the backend; a block whose
// digest does not match passes as sent but is not held; the backend's own
// Postern- headers never reach the mesh.
func TestIdentityByReference(t *testing.T) {
	var hits atomic.Int32
	var got http.Header
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		got = r.Header.Clone()
		w.Header().Set(tunnelhttp.HeaderIdentity, "forged")
		w.Header().Set(tunnelhttp.HeaderError, "forged")
		io.WriteString(w, "ok")
	}))
	defer backend.Close()
	h := New(Config{AllowList: loopback(t)})
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()
	names := []string{"X-Postern-User", "X-Postern-Assertion"}
	vals := []string{"tid/oid", "eyJ.x.y"}
	digest := tunnelhttp.IdentityDigest("app1", names, vals)
	send := func(app string, mod func(http.Header)) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/p", nil)
		req.Header.Set(tunnelhttp.HeaderTarget, backend.URL)
		req.Header.Set(tunnelhttp.HeaderApp, app)
		mod(req.Header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	full := func(h http.Header) {
		for i, n := range names {
			h.Set(n, vals[i])
		}
		h.Set(tunnelhttp.HeaderIdentity, tunnelhttp.IdentityFull(digest, names))
	}
	ref := func(h http.Header) { h.Set(tunnelhttp.HeaderIdentity, digest) }
	wantIdentity := func(step string) {
		t.Helper()
		for i, n := range names {
			if v := got[n]; len(v) != 1 || v[0] != vals[i] {
				t.Errorf("%s: backend got %s %q, want %q", step, n, v, vals[i])
			}
		}
		for k := range got {
			if strings.HasPrefix(k, "Postern-") {
				t.Errorf("%s: backend got internal header %s", step, k)
			}
		}
	}

	// A reference before the block was ever sent.
	resp := send("app1", ref)
	if resp.StatusCode != http.StatusPreconditionFailed || resp.Header.Get(tunnelhttp.HeaderError) != tunnelhttp.ErrIdentityUnknown || hits.Load() != 0 {
		t.Fatalf("unknown reference: %d %q, backend hit %d times", resp.StatusCode, resp.Header.Get(tunnelhttp.HeaderError), hits.Load())
	}
	// In full: forwarded and held.
	resp = send("app1", full)
	if resp.StatusCode != 200 || len(resp.Header.Values(tunnelhttp.HeaderIdentity)) != 1 || resp.Header.Get(tunnelhttp.HeaderIdentity) != digest || resp.Header.Get(tunnelhttp.HeaderError) != "" {
		t.Fatalf("full: %d, answer %q (error %q)", resp.StatusCode, resp.Header.Values(tunnelhttp.HeaderIdentity), resp.Header.Get(tunnelhttp.HeaderError))
	}
	wantIdentity("full")
	// By reference, with a client-looking header of the same name that
	// the block overrides.
	got = nil
	resp = send("app1", func(h http.Header) { ref(h); h.Set("X-Postern-User", "evil") })
	if resp.StatusCode != 200 || resp.Header.Get(tunnelhttp.HeaderIdentity) != "" {
		t.Fatalf("reference: %d %q (a reference's answer need not say the block is held)", resp.StatusCode, resp.Header.Values(tunnelhttp.HeaderIdentity))
	}
	wantIdentity("reference")
	// The same digest for another app is unknown.
	n := hits.Load()
	if resp = send("app2", ref); resp.StatusCode != http.StatusPreconditionFailed || hits.Load() != n {
		t.Fatalf("another app's reference: %d, backend hit", resp.StatusCode)
	}
	// A block whose digest does not match: forwarded as sent, not held.
	other := tunnelhttp.IdentityDigest("app1", names, []string{"someone-else", "eyJ.x.y"})
	resp = send("app1", func(h http.Header) {
		full(h)
		h.Set(tunnelhttp.HeaderIdentity, tunnelhttp.IdentityFull(other, names))
	})
	if resp.StatusCode != 200 || resp.Header.Get(tunnelhttp.HeaderIdentity) != "" {
		t.Fatalf("mismatched block: %d, answer %q", resp.StatusCode, resp.Header.Get(tunnelhttp.HeaderIdentity))
	}
	wantIdentity("mismatched block")
	if resp = send("app1", func(h http.Header) { h.Set(tunnelhttp.HeaderIdentity, other) }); resp.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("a mismatched block was held: %d", resp.StatusCode)
	}
	// A malformed header: forwarded as sent (nothing to expand).
	got = nil
	if resp = send("app1", func(h http.Header) { h.Set(tunnelhttp.HeaderIdentity, "garbage") }); resp.StatusCode != 200 {
		t.Fatalf("malformed: %d", resp.StatusCode)
	}
	if got.Get("X-Postern-User") != "" {
		t.Fatal("a malformed reference was expanded")
	}
}
