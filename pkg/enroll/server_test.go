package enroll

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"golang.org/x/time/rate"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/wgkey"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeAttacher records attaches and detaches and answers with a fixed node
// description.
type fakeAttacher struct {
	mu       sync.Mutex
	got      []authority.Credential
	detached []detachCall
	err      error
	resp     AttachResponse
}

type detachCall struct {
	id    string
	drain bool
}

func (f *fakeAttacher) Detach(ctx context.Context, c authority.Credential, drain bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.detached = append(f.detached, detachCall{c.ConnectorID, drain})
	return nil
}

func (f *fakeAttacher) Attach(ctx context.Context, c authority.Credential) (AttachResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return AttachResponse{}, f.err
	}
	f.got = append(f.got, c)
	return f.resp, nil
}

type env struct {
	clock    *testkit.Clock
	key      authority.Key
	auth     *authority.Authority
	usedPath string
	srv      *Server
	ts       *httptest.Server
	client   *Client
	logs     *testkit.SyncBuffer
	attacher *fakeAttacher
	nodeKey  wgkey.Private
	remote   atomic.Pointer[string] // overrides RemoteAddr, as a tunnel listener would give
}

// proof returns key's proof for a request to this env's node.
func (e *env) proof(tb testing.TB, key wgkey.Private, path, cred, extra string) string {
	tb.Helper()
	p, err := Proof(key, e.nodeKey.Public(), path, e.clock.Now(), cred, extra)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// clientFor returns a client that proves possession of key.
func (e *env) clientFor(key wgkey.Private) *Client {
	return &Client{BaseURL: e.ts.URL, HTTPClient: e.ts.Client(), Key: key, Now: e.clock.Now}
}

func newEnv(tb testing.TB, mod func(*Config)) *env {
	tb.Helper()
	e := &env{clock: testkit.NewClock(t0), logs: &testkit.SyncBuffer{}}
	var err error
	if e.key, err = authority.GenerateKey(); err != nil {
		tb.Fatal(err)
	}
	if e.auth, err = authority.New(authority.Config{Key: e.key, Now: e.clock.Now}); err != nil {
		tb.Fatal(err)
	}
	e.usedPath = filepath.Join(tb.TempDir(), "used.json")
	used, err := authority.OpenUsedTokens(e.usedPath, e.clock.Now, false)
	if err != nil {
		tb.Fatal(err)
	}
	e.nodeKey = newKey(tb)
	nodeKey := e.nodeKey.Public()
	e.attacher = &fakeAttacher{resp: AttachResponse{
		NodeID: "mesh-eu-1", Region: "eu-west-1", PublicKey: nodeKey,
		Endpoint: "127.0.0.1:51820", TunnelAddr: nodeKey.Addr(),
	}}
	cfg := Config{
		Authority: e.auth,
		Used:      used,
		NodeKey:   e.nodeKey,
		Attacher:  e.attacher,
		Logger:    slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RateLimit: rate.Inf,
		Now:       e.clock.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	if e.srv, err = NewServer(cfg); err != nil {
		tb.Fatal(err)
	}
	e.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := e.remote.Load(); a != nil {
			r.RemoteAddr = *a
		}
		e.srv.ServeHTTP(w, r)
	}))
	tb.Cleanup(e.ts.Close)
	e.client = &Client{BaseURL: e.ts.URL, HTTPClient: e.ts.Client()}
	return e
}

func newPub(tb testing.TB) wgkey.Public { return newKey(tb).Public() }

func newKey(tb testing.TB) wgkey.Private {
	tb.Helper()
	k, err := wgkey.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func (e *env) mint(tb testing.TB) string {
	tb.Helper()
	tok, _, err := e.auth.MintEnrollToken("branch", time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// fromTunnel makes the next requests come from pub's tunnel address.
func (e *env) fromTunnel(pub wgkey.Public) {
	s := netip.AddrPortFrom(pub.Addr(), 40000).String()
	e.remote.Store(&s)
}

// post sends body (a string is sent raw) and returns the status and the
// decoded error answer, checking that every error answer is JSON.
func post(tb testing.TB, url string, body any) (int, ErrorResponse, http.Header) {
	tb.Helper()
	raw, ok := body.(string)
	if !ok {
		b, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		raw = string(b)
	}
	resp, err := http.Post(url, "application/json", strings.NewReader(raw))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var er ErrorResponse
	if resp.StatusCode/100 != 2 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			tb.Fatalf("error answer Content-Type %q, want application/json", ct)
		}
		if err := json.NewDecoder(resp.Body).Decode(&er); err != nil {
			tb.Fatalf("error answer is not JSON: %v", err)
		}
	}
	return resp.StatusCode, er, resp.Header
}

func TestEnrollAttachRenew(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	key := newKey(t)
	pub := key.Public()
	e.client = e.clientFor(key)
	enr, err := e.client.Enroll(ctx, e.mint(t), key, "Web 01")
	if err != nil {
		t.Fatal(err)
	}
	if want := authority.ConnectorID("Web 01", pub); enr.ConnectorID != want || enr.Group != "branch" {
		t.Fatalf("got %s/%s, want %s/branch", enr.ConnectorID, enr.Group, want)
	}
	if want := t0.Add(DefaultCredentialTTL); !enr.Expires.Equal(want) {
		t.Fatalf("expires %v, want %v", enr.Expires, want)
	}
	cred, err := e.auth.VerifyCredential(enr.Credential)
	if err != nil {
		t.Fatal(err)
	}
	if cred.PublicKey != pub || cred.ConnectorID != enr.ConnectorID {
		t.Fatalf("credential %+v does not match the enrolment", cred)
	}

	att, err := e.client.Attach(ctx, enr.Credential)
	if err != nil {
		t.Fatal(err)
	}
	want := e.attacher.resp
	want.CredentialExpires = enr.Expires
	if att.NodeID != want.NodeID || att.PublicKey != want.PublicKey || att.TunnelAddr != want.TunnelAddr ||
		att.Endpoint != want.Endpoint || !att.CredentialExpires.Equal(want.CredentialExpires) {
		t.Fatalf("got %+v, want %+v", att, want)
	}
	if len(e.attacher.got) != 1 || e.attacher.got[0] != cred {
		t.Fatalf("attacher got %+v, want [%+v]", e.attacher.got, cred)
	}

	e.clock.Set(t0.Add(24 * time.Hour))
	e.fromTunnel(pub)
	ren, err := e.client.Renew(ctx, enr.Credential)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := e.auth.VerifyCredential(ren.Credential)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.ConnectorID != cred.ConnectorID || fresh.Group != cred.Group || fresh.PublicKey != cred.PublicKey {
		t.Fatalf("renewed %+v, want same id, group and key as %+v", fresh, cred)
	}
	if !fresh.Expires.After(cred.Expires) || !ren.Expires.Equal(fresh.Expires) {
		t.Fatalf("renewed expiry %v (answer %v), want after %v", fresh.Expires, ren.Expires, cred.Expires)
	}
}

func TestEnrollRefusals(t *testing.T) {
	e := newEnv(t, nil)
	key := newKey(t)
	pub := key.Public()
	good := e.mint(t)
	parts := strings.Split(good, ".")

	used := e.mint(t)
	if _, err := e.client.Enroll(t.Context(), used, key, "x"); err != nil {
		t.Fatal(err)
	}
	mintAt := func(at time.Time) string {
		a, err := authority.New(authority.Config{Key: e.key, Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := a.MintEnrollToken("branch", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	otherKey, _ := authority.GenerateKey()
	other, _ := authority.New(authority.Config{Key: otherKey, Now: e.clock.Now})
	fromOther, _, _ := other.MintEnrollToken("branch", time.Hour)
	cred, _, err := e.auth.IssueCredential("c-1", "branch", pub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tamperedPayload := parts[0] + "." + base64.RawURLEncoding.EncodeToString(bytes.Replace(payload, []byte(`"branch"`), []byte(`"admins"`), 1)) + "." + parts[2]
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[5] ^= 0x40
	tamperedSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	noneHdr := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"alg":"none","typ":%q,"kid":%q}`, authority.EnrollType, e.key.KeyID())))
	algNone := noneHdr + "." + parts[1] + "."
	// A forged signature by another key under our kid.
	otherSig := ed25519.Sign(ed25519PrivFromSeed(t), []byte(parts[0]+"."+parts[1]))
	forged := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(otherSig)

	req := func(tok string) map[string]string {
		return map[string]string{"token": tok, "public_key": pub.String(), "name": "x"}
	}
	tests := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"reused token", req(used), http.StatusConflict, CodeTokenAlreadyUsed},
		{"expired", req(mintAt(t0.Add(-2 * time.Hour))), http.StatusUnauthorized, CodeTokenExpired},
		{"not yet valid", req(mintAt(t0.Add(time.Hour))), http.StatusUnauthorized, CodeTokenNotYetValid},
		{"tampered payload", req(tamperedPayload), http.StatusUnauthorized, CodeTokenBadSignature},
		{"tampered signature", req(tamperedSig), http.StatusUnauthorized, CodeTokenBadSignature},
		{"alg none", req(algNone), http.StatusUnauthorized, CodeTokenBadAlgorithm},
		{"signed by another key", req(fromOther), http.StatusUnauthorized, CodeTokenUnknownKey},
		{"another key under our kid", req(forged), http.StatusUnauthorized, CodeTokenBadSignature},
		{"credential as token", req(cred), http.StatusUnauthorized, CodeTokenWrongType},
		{"garbage token", req("garbage"), http.StatusUnauthorized, CodeTokenMalformed},
		{"bad public key", map[string]string{"token": good, "public_key": "AAAA"}, http.StatusBadRequest, CodeBadPublicKey},
		{"missing public key", map[string]string{"token": good}, http.StatusBadRequest, CodeBadPublicKey},
		{"name too long", map[string]string{"token": good, "public_key": pub.String(), "name": strings.Repeat("n", MaxNameLen+1)}, http.StatusBadRequest, CodeBadName},
		{"malformed JSON", `{"token":`, http.StatusBadRequest, CodeBadRequest},
		{"unknown field", map[string]string{"token": good, "public_key": pub.String(), "group": "admins"}, http.StatusBadRequest, CodeBadRequest},
		{"trailing data", `{"token":"x","public_key":"` + pub.String() + `"} {}`, http.StatusBadRequest, CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, er, _ := post(t, e.ts.URL+EnrollPath, tt.body)
			if status != tt.status || er.Error != tt.code {
				t.Fatalf("got %d %s, want %d %s", status, er.Error, tt.status, tt.code)
			}
			if er.Message == "" {
				t.Fatal("error answer without a message")
			}
		})
	}
	// None of the refusals burnt the good token.
	if _, err := e.client.Enroll(t.Context(), good, key, "x"); err != nil {
		t.Fatalf("good token after refusals: %v", err)
	}
}

func ed25519PrivFromSeed(tb testing.TB) ed25519.PrivateKey {
	tb.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return priv
}

func TestBadPublicKeyDoesNotBurnToken(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.mint(t)
	status, er, _ := post(t, e.ts.URL+EnrollPath, map[string]string{"token": tok, "public_key": "bm90IGEga2V5"})
	if status != http.StatusBadRequest || er.Error != CodeBadPublicKey {
		t.Fatalf("got %d %s, want 400 %s", status, er.Error, CodeBadPublicKey)
	}
	if _, err := e.client.Enroll(t.Context(), tok, newKey(t), "x"); err != nil {
		t.Fatalf("correct request after a bad one: %v", err)
	}
	_, err := e.client.Enroll(t.Context(), tok, newKey(t), "x")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != CodeTokenAlreadyUsed {
		t.Fatalf("third use: got %v, want 409 %s", err, CodeTokenAlreadyUsed)
	}
}

func TestConcurrentEnrollSameToken(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.mint(t)
	const n = 4
	results := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := e.client.Enroll(t.Context(), tok, newKey(t), "x")
			results <- err
		})
	}
	wg.Wait()
	close(results)
	wins := 0
	for err := range results {
		var ae *APIError
		switch {
		case err == nil:
			wins++
		case errors.As(err, &ae) && ae.Code == CodeTokenAlreadyUsed && ae.Status == http.StatusConflict:
		default:
			t.Errorf("got %v, want success or 409 %s", err, CodeTokenAlreadyUsed)
		}
	}
	if wins != 1 {
		t.Fatalf("got %d successful enrolments, want 1", wins)
	}
}

func TestUsedTokenSurvivesRestart(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.mint(t)
	if _, err := e.client.Enroll(t.Context(), tok, newKey(t), "x"); err != nil {
		t.Fatal(err)
	}
	used, err := authority.OpenUsedTokens(e.usedPath, e.clock.Now, false)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(Config{Authority: e.auth, Used: used, NodeKey: newKey(t), RateLimit: rate.Inf})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	status, er, _ := post(t, ts.URL+EnrollPath, map[string]string{"token": tok, "public_key": newPub(t).String()})
	if status != http.StatusConflict || er.Error != CodeTokenAlreadyUsed {
		t.Fatalf("after restart: got %d %s, want 409 %s", status, er.Error, CodeTokenAlreadyUsed)
	}
}

func TestAttachRefusals(t *testing.T) {
	key := newKey(t)
	pub := key.Public()
	tests := []struct {
		name   string
		mod    func(*Config)
		attErr error
		cred   func(e *env) string
		status int
		code   string
	}{
		{"token as credential", nil, nil, func(e *env) string { return e.mint(t) }, http.StatusUnauthorized, CodeCredentialWrongType},
		{"garbage", nil, nil, func(e *env) string { return "x.y.z" }, http.StatusUnauthorized, CodeCredentialMalformed},
		{"expired", nil, nil, func(e *env) string {
			s, _, _ := e.auth.IssueCredential("c-1", "branch", pub, time.Minute)
			e.clock.Set(t0.Add(time.Hour))
			return s
		}, http.StatusUnauthorized, CodeCredentialExpired},
		{"refused by node", nil, fmt.Errorf("group branch unknown: %w", ErrAttachRefused), issued(pub), http.StatusForbidden, CodeAttachRefused},
		{"node failure", nil, errors.New("wireguard busy"), issued(pub), http.StatusServiceUnavailable, CodeAttachFailed},
		{"no attacher", func(c *Config) { c.Attacher = nil }, nil, issued(pub), http.StatusServiceUnavailable, CodeAttachUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.mod)
			e.attacher.err = tt.attErr
			_, err := e.clientFor(key).Attach(t.Context(), tt.cred(e))
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != tt.status || ae.Code != tt.code {
				t.Fatalf("got %v, want %d %s", err, tt.status, tt.code)
			}
		})
	}
}

func issued(pub wgkey.Public) func(e *env) string {
	return func(e *env) string {
		s, _, err := e.auth.IssueCredential("c-1", "branch", pub, time.Hour)
		if err != nil {
			panic(err)
		}
		return s
	}
}

func TestRenewRefusals(t *testing.T) {
	e := newEnv(t, nil)
	pub, other := newPub(t), newPub(t)
	cred := issued(pub)(e)
	tests := []struct {
		name   string
		remote *wgkey.Public // nil: the real loopback address
		cred   func() string
		status int
		code   string
	}{
		{"from loopback, not the tunnel", nil, func() string { return cred }, http.StatusForbidden, CodeTunnelAddrMismatch},
		{"from another key's tunnel address", &other, func() string { return cred }, http.StatusForbidden, CodeTunnelAddrMismatch},
		{"token instead of credential", &pub, func() string { return e.mint(t) }, http.StatusUnauthorized, CodeCredentialWrongType},
		{"expired credential", &pub, func() string {
			s, _, _ := e.auth.IssueCredential("c-1", "branch", pub, time.Minute)
			e.clock.Set(t0.Add(time.Hour))
			t.Cleanup(func() { e.clock.Set(t0) })
			return s
		}, http.StatusUnauthorized, CodeCredentialExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Set(t0)
			e.remote.Store(nil)
			if tt.remote != nil {
				e.fromTunnel(*tt.remote)
			}
			_, err := e.client.Renew(t.Context(), tt.cred())
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != tt.status || ae.Code != tt.code {
				t.Fatalf("got %v, want %d %s", err, tt.status, tt.code)
			}
		})
	}
}

func TestHTTPChecks(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.mint(t)
	body := `{"token":"` + tok + `","public_key":"` + newPub(t).String() + `"}`
	tests := []struct {
		name   string
		method string
		path   string
		ctype  string
		body   string
		status int
		code   string
	}{
		{"GET", http.MethodGet, EnrollPath, "", "", http.StatusMethodNotAllowed, CodeMethodNotAllowed},
		{"PUT", http.MethodPut, RenewPath, "application/json", "{}", http.StatusMethodNotAllowed, CodeMethodNotAllowed},
		{"form body", http.MethodPost, EnrollPath, "application/x-www-form-urlencoded", "token=x", http.StatusUnsupportedMediaType, CodeUnsupportedMediaType},
		{"no content type", http.MethodPost, AttachPath, "", "{}", http.StatusUnsupportedMediaType, CodeUnsupportedMediaType},
		{"body too large", http.MethodPost, EnrollPath, "application/json", `{"token":"` + strings.Repeat("a", MaxBodySize) + `"}`, http.StatusRequestEntityTooLarge, CodeRequestTooLarge},
		{"unknown path", http.MethodPost, PathPrefix + "admin", "application/json", "{}", http.StatusNotFound, CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, e.ts.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var er ErrorResponse
			if err := json.NewDecoder(resp.Body).Decode(&er); err != nil {
				t.Fatalf("answer is not JSON: %v", err)
			}
			if resp.StatusCode != tt.status || er.Error != tt.code {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, er.Error, tt.status, tt.code)
			}
			if tt.status == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != http.MethodPost {
				t.Fatalf("Allow %q, want POST", resp.Header.Get("Allow"))
			}
		})
	}
	// None of these burnt the token in body.
	if status, er, _ := post(t, e.ts.URL+EnrollPath, body); status != http.StatusOK {
		t.Fatalf("token after refusals: got %d %s, want 200", status, er.Error)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RateLimit = rate.Every(10 * time.Second); c.RateBurst = 2 })
	serve := func(remote string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, EnrollPath, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		return rec
	}
	for i := range 2 {
		if rec := serve("192.0.2.1:1000"); rec.Code == http.StatusTooManyRequests {
			t.Fatalf("request %d within burst limited", i)
		}
	}
	rec := serve("192.0.2.1:1001")
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), CodeRateLimited) {
		t.Fatalf("got %d %s, want 429 %s", rec.Code, rec.Body, CodeRateLimited)
	}
	if got := rec.Header().Get("Retry-After"); got != "10" {
		t.Fatalf("Retry-After %q, want 10", got)
	}
	if rec := serve("192.0.2.2:1000"); rec.Code == http.StatusTooManyRequests {
		t.Fatal("another address limited")
	}
	if rec := serve("[2001:db8::1]:1000"); rec.Code == http.StatusTooManyRequests {
		t.Fatal("first IPv6 request limited")
	}
	serve("[2001:db8::2]:1000")
	if rec := serve("[2001:db8::3]:1000"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("third request from one IPv6 /64: got %d, want 429", rec.Code)
	}
	e.clock.Set(t0.Add(10 * time.Second))
	if rec := serve("192.0.2.1:1002"); rec.Code == http.StatusTooManyRequests {
		t.Fatal("still limited after the bucket refilled")
	}
	// The client surfaces Retry-After.
	e.clock.Set(t0)
	var ae *APIError
	for range 3 {
		_, err := e.client.Enroll(t.Context(), "x", newKey(t), "")
		if errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests {
			break
		}
	}
	if ae == nil || ae.Status != http.StatusTooManyRequests || ae.RetryAfter <= 0 {
		t.Fatalf("got %+v, want a 429 APIError with RetryAfter", ae)
	}
}

func TestSecretsNotInLogs(t *testing.T) {
	e := newEnv(t, nil)
	key := newKey(t)
	pub := key.Public()
	e.client = e.clientFor(key)
	tok := e.mint(t)
	enr, err := e.client.Enroll(t.Context(), tok, key, "web")
	if err != nil {
		t.Fatal(err)
	}
	e.client.Enroll(t.Context(), tok, key, "web") // reused: refused, logged
	post(t, e.ts.URL+EnrollPath, map[string]string{"token": tok + "x", "public_key": pub.String()})
	post(t, e.ts.URL+EnrollPath, map[string]string{"token": tok, "public_key": tok})
	if _, err := e.client.Attach(t.Context(), enr.Credential); err != nil {
		t.Fatal(err)
	}
	e.client.Renew(t.Context(), enr.Credential) // wrong address: refused, logged
	e.fromTunnel(pub)
	ren, err := e.client.Renew(t.Context(), enr.Credential)
	if err != nil {
		t.Fatal(err)
	}
	e.client.Attach(t.Context(), tok) // token as credential

	logs := e.logs.String()
	sigs := func(s string) string { return s[strings.LastIndex(s, ".")+1:] }
	for name, secret := range map[string]string{
		"token": tok, "token signature": sigs(tok),
		"credential": enr.Credential, "credential signature": sigs(enr.Credential),
		"renewed credential": ren.Credential,
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("%s found in logs", name)
		}
	}
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) != 8 {
		t.Fatalf("got %d log lines, want 8 (one per request):\n%s", len(lines), logs)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"connector": enr.ConnectorID, "group": "branch", "status": float64(200), "path": EnrollPath} {
		if first[k] != want {
			t.Errorf("log key %s: got %v, want %v", k, first[k], want)
		}
	}
	if first["request_id"] == "" || first["request_id"] == nil {
		t.Error("log line without request_id")
	}
}

func TestAPIErrorMessage(t *testing.T) {
	tests := []struct {
		err  APIError
		want string
	}{
		{APIError{Op: "enroll", Status: 409, Code: CodeTokenAlreadyUsed, Message: `this enrolment token has already been used; mint a new one with "meshd token create"`},
			`enroll: mesh refused the token (token_already_used): this enrolment token has already been used; mint a new one with "meshd token create"`},
		{APIError{Op: "attach", Status: 401, Code: CodeCredentialExpired, Message: "m"}, "attach: mesh refused the credential (credential_expired): m"},
		{APIError{Op: "renew", Status: 403, Code: CodeTunnelAddrMismatch, Message: "m"}, "renew: mesh refused the request (tunnel_address_mismatch): m"},
		{APIError{Op: "enroll", Status: 502}, "enroll: mesh node answered HTTP 502 without a Postern error body; is the URL a Postern mesh node?"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	// And the real server's answer reads the same.
	e := newEnv(t, nil)
	tok := e.mint(t)
	e.client.Enroll(t.Context(), tok, newKey(t), "")
	_, err := e.client.Enroll(t.Context(), tok, newKey(t), "")
	if err == nil || err.Error() != tests[0].want {
		t.Fatalf("got %v, want %q", err, tests[0].want)
	}
	if strings.Contains(err.Error(), tok) {
		t.Fatal("client error contains the token")
	}
}

func TestNewServerConfig(t *testing.T) {
	k, _ := authority.GenerateKey()
	a, _ := authority.New(authority.Config{Key: k})
	used, _ := authority.OpenUsedTokens(filepath.Join(t.TempDir(), "u"), nil, false)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no authority", Config{Used: used, NodeKey: newKey(t)}},
		{"no used set", Config{Authority: a, NodeKey: newKey(t)}},
		{"no node key", Config{Authority: a, Used: used}},
		{"ttl too long", Config{Authority: a, Used: used, NodeKey: newKey(t), CredentialTTL: 10 * 365 * 24 * time.Hour}},
		{"negative burst", Config{Authority: a, Used: used, NodeKey: newKey(t), RateBurst: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewServer(tt.cfg); err == nil {
				t.Fatal("got nil error, want one")
			}
		})
	}
}

func TestPing(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		method string
		status int
	}{
		{http.MethodGet, http.StatusNoContent},
		{http.MethodHead, http.StatusNoContent},
		{http.MethodPost, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, e.ts.URL+PingPath, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Fatalf("Cache-Control got %q, want no-store", got)
			}
			if tt.status == http.StatusNoContent && len(body) != 0 {
				t.Fatalf("body got %q, want none", body)
			}
		})
	}
	if err := e.client.Ping(t.Context()); err != nil {
		t.Fatalf("client ping: got %v, want nil", err)
	}
	if strings.Contains(e.logs.String(), PingPath) {
		t.Fatalf("ping logged: %s", e.logs)
	}
}

func TestPingRateLimitSeparate(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.RateLimit, c.RateBurst = rate.Every(time.Hour), 1
		c.PingRateLimit, c.PingRateBurst = rate.Every(time.Hour), 3
	})
	for i := range 3 {
		if err := e.client.Ping(t.Context()); err != nil {
			t.Fatalf("ping %d: got %v, want nil", i, err)
		}
	}
	var ae *APIError
	if err := e.client.Ping(t.Context()); !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests {
		t.Fatalf("ping past burst: got %v, want 429", err)
	}
	// The pings did not use up the API's own budget.
	key := newKey(t)
	cl := e.clientFor(key)
	cl.NodeKey = e.nodeKey.Public() // known: one request, no challenge
	if _, err := cl.Attach(t.Context(), issued(key.Public())(e)); err != nil {
		t.Fatalf("attach after pings: got %v, want nil", err)
	}
}

func TestDetach(t *testing.T) {
	key := newKey(t)
	pub := key.Public()
	for _, drain := range []bool{true, false} {
		t.Run(fmt.Sprintf("drain=%v", drain), func(t *testing.T) {
			e := newEnv(t, nil)
			if err := e.clientFor(key).Detach(t.Context(), issued(pub)(e), drain); err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			want := []detachCall{{"c-1", drain}}
			if len(e.attacher.detached) != 1 || e.attacher.detached[0] != want[0] {
				t.Fatalf("got %v, want %v", e.attacher.detached, want)
			}
		})
	}
	t.Run("204", func(t *testing.T) {
		e := newEnv(t, nil)
		c := issued(pub)(e)
		status, _, h := post(t, e.ts.URL+DetachPath, DetachRequest{Credential: c, Drain: true, Proof: e.proof(t, key, DetachPath, c, "drain=true")})
		if status != http.StatusNoContent || h.Get("Cache-Control") != "no-store" {
			t.Fatalf("got %d %q, want 204 no-store", status, h.Get("Cache-Control"))
		}
	})
}

func TestDetachRefusals(t *testing.T) {
	key := newKey(t)
	pub := key.Public()
	proven := func(e *env) any {
		c := issued(pub)(e)
		return DetachRequest{Credential: c, Proof: e.proof(t, key, DetachPath, c, "drain=false")}
	}
	tests := []struct {
		name   string
		mod    func(*Config)
		attErr error
		body   func(e *env) any
		status int
		code   string
	}{
		{"unknown field", nil, nil, func(e *env) any { return map[string]any{"credential": issued(pub)(e), "force": true} }, http.StatusBadRequest, CodeBadRequest},
		{"drain not a bool", nil, nil, func(e *env) any { return map[string]any{"credential": issued(pub)(e), "drain": "yes"} }, http.StatusBadRequest, CodeBadRequest},
		{"token as credential", nil, nil, func(e *env) any { return DetachRequest{Credential: e.mint(t)} }, http.StatusUnauthorized, CodeCredentialWrongType},
		{"garbage", nil, nil, func(e *env) any { return DetachRequest{Credential: "x.y.z", Drain: true} }, http.StatusUnauthorized, CodeCredentialMalformed},
		{"no proof", nil, nil, func(e *env) any { return DetachRequest{Credential: issued(pub)(e)} }, http.StatusUnauthorized, CodeProofRequired},
		{"node failure", nil, errors.New("pool busy"), proven, http.StatusServiceUnavailable, CodeDetachFailed},
		{"no attacher", func(c *Config) { c.Attacher = nil }, nil, proven, http.StatusServiceUnavailable, CodeAttachUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.mod)
			e.attacher.err = tt.attErr
			status, er, _ := post(t, e.ts.URL+DetachPath, tt.body(e))
			if status != tt.status || er.Error != tt.code {
				t.Fatalf("got %d %s, want %d %s", status, er.Error, tt.status, tt.code)
			}
			if len(e.attacher.detached) != 0 {
				t.Fatalf("attacher got %v, want no detach", e.attacher.detached)
			}
		})
	}
}

func TestAttachNodes(t *testing.T) {
	e := newEnv(t, nil)
	nodes := []NodeInfo{{ID: "mesh-eu-1", Region: "eu-west-1", URL: "https://eu1.example.com"},
		{ID: "mesh-us-1", Region: "us-east-1", URL: "https://us1.example.com"}}
	e.attacher.resp.Nodes = nodes
	key := newKey(t)
	resp, err := e.clientFor(key).Attach(t.Context(), issued(key.Public())(e))
	if err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff(nodes, resp.Nodes); diff != "" {
		t.Fatalf("nodes (-want +got):\n%s", diff)
	}
}

// listingAttacher adds the optional NodeLister capability.
type listingAttacher struct {
	*fakeAttacher
	nodes []NodeInfo
}

func (l listingAttacher) Nodes(ctx context.Context, c authority.Credential) ([]NodeInfo, error) {
	return l.nodes, nil
}

func TestNodes(t *testing.T) {
	pub := newPub(t)
	e := newEnv(t, nil)
	// Without the capability the endpoint answers 503.
	if _, err := e.client.Nodes(t.Context(), issued(pub)(e)); err == nil {
		t.Error("got nil error from an attacher that lists no nodes")
	}
	want := []NodeInfo{{ID: "a", Region: "eu", URL: "https://a.example"}}
	e2 := newEnv(t, func(c *Config) { c.Attacher = listingAttacher{&fakeAttacher{}, want} })
	got, err := e2.client.Nodes(t.Context(), issued(pub)(e2))
	if err != nil || len(got) != 1 || got[0] != want[0] {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	if _, err := e2.client.Nodes(t.Context(), "not-a-credential"); err == nil {
		t.Error("got nil error listing nodes with a bad credential")
	}
}
