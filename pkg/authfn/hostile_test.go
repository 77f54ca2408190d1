package authfn

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/appreq"
)

// rawSign signs r as m's node without the signer's checks: what a node
// that was taken over (its key and credential stolen) could send.
func rawSign(t testing.TB, m *testMesh, r appreq.Request, now time.Time) string {
	t.Helper()
	r.Node, r.Audience, r.Credential = m.cred.NodeID, authURL, m.cred.String()
	r.IssuedAt, r.Expiry = now.Unix(), now.Add(time.Minute).Unix()
	payload, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	in := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","typ":"`+appreq.Type+`"}`)) + "." + base64.RawURLEncoding.EncodeToString(payload)
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(m.node, []byte(in)))
}

// TestAuthorizeHostile checks that /authorize refuses every missing,
// forged, replayed or hostile sign-in request with a clear page and sets
// no cookie: links without a signed app request, requests that another
// mesh's node, a tampered copy or an old link carry, and requests whose
// return path or binding is bad even when a (stolen) node key signed them.
func TestAuthorizeHostile(t *testing.T) {
	e := newTestEnv(t, nil)
	good := newBinding()
	now := e.clock.Now()
	signed := func(edit func(r *appreq.Request)) string {
		r := e.mesh.request(t, "wiki", "/", good)
		edit(&r)
		return url.Values{appreq.Param: {rawSign(t, e.mesh, r, now)}}.Encode()
	}
	valid := e.mesh.sign(t, e.mesh.request(t, "wiki", "/", good), e.clock.Now)
	other := newTestMesh(t, now) // another mesh: its authority is not trusted here
	tests := []struct {
		name   string
		query  string
		status int
	}{
		{"nothing", "", 400},
		{"unsigned link of an older mesh node", url.Values{"app": {"wiki"}, "rd": {"/"}, "b": {good}}.Encode(), 400},
		{"request twice", url.Values{appreq.Param: {valid, valid}}.Encode(), 400},
		{"request of another mesh", url.Values{appreq.Param: {other.sign(t, other.request(t, "wiki", "/", good), e.clock.Now)}}.Encode(), 400},
		{"request tampered", url.Values{appreq.Param: {valid[:len(valid)-8] + "AAAAAAAA"}}.Encode(), 400},
		{"request for other auth functions", signed(func(r *appreq.Request) {}) + "x", 400},
		{"request garbage", url.Values{appreq.Param: {"eyJhbGciOiJub25lIn0.e30."}}.Encode(), 400},
		{"no binding", signed(func(r *appreq.Request) { r.Binding = "" }), 400},
		{"no return path", signed(func(r *appreq.Request) { r.ReturnPath = "" }), 400},
	}
	for _, rd := range []string{"//evil.com", `/\evil.com`, "https:evil.com", "https://evil.com/x", "%2F%2Fevil.com",
		"/%2F%2Fevil.com", "/%252F%252Fevil.com", "/%5Cevil.com", "/\t/evil.com", "/x\nSet-Cookie: a=b", " /x", "/ /evil.com",
		"/@evil.com", "//wiki.localhost@evil.com", "javascript:alert(1)", "/a/../../evil", "evil.com", "/x#frag"} {
		tests = append(tests, struct {
			name   string
			query  string
			status int
		}{"rd " + rd, signed(func(r *appreq.Request) { r.ReturnPath = rd }), 400})
	}
	for _, b := range []string{good[:42], good + "=", strings.Repeat("*", 43), "+" + good[1:], good[:42] + "B"} {
		tests = append(tests, struct {
			name   string
			query  string
			status int
		}{"b " + b, signed(func(r *appreq.Request) { r.Binding = b }), 400})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.get("/authorize?" + tt.query)
			assertRefused(t, w, tt.status)
		})
	}
	// A good request passes at first, and is refused once its window is
	// over: a link replayed later gets nothing.
	if w := e.get("/authorize?" + url.Values{appreq.Param: {valid}}.Encode()); w.Code != http.StatusFound {
		t.Fatalf("the valid request: got %d %s", w.Code, w.Body)
	}
	e.clock.Add(appreq.DefaultLifetime + appreq.DefaultSkew)
	assertRefused(t, e.get("/authorize?"+url.Values{appreq.Param: {valid}}.Encode()), 400)
}

// TestCallbackHostile checks that /callback refuses forged, replayed,
// expired and wrong responses with a clear page and sets no cookie.
func TestCallbackHostile(t *testing.T) {
	tests := []struct {
		name   string
		run    func(t *testing.T, e *testEnv) *httptest.ResponseRecorder
		status int
	}{
		{"no flow cookie", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			code := e.op.issue(s.challenge, e.op.sign(t, e.claims(s, nil), false))
			return (e.get("/callback?" + url.Values{"code": {code}, "state": {s.state}}.Encode()))
		}, 400},
		{"garbage flow cookie", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			s.flow.Value = "not-a-jwe"
			return (e.finish(s, e.op.sign(t, e.claims(s, nil), false)))
		}, 400},
		{"tampered flow cookie", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			v := []byte(s.flow.Value)
			i := bytes.LastIndexByte(v, '.') - 5
			v[i] ^= 1
			s.flow.Value = string(v)
			return (e.finish(s, e.op.sign(t, e.claims(s, nil), false)))
		}, 400},
		{"flow cookie of another deployment", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			other := newTestEnv(t, func(c *Config) { c.StateKey = bytes.Repeat([]byte{9}, 32) })
			s := other.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, nil), false)))
		}, 400},
		{"expired flow", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			e.clock.Add(FlowLifetime + time.Minute)
			return (e.finish(s, e.op.sign(t, e.claims(s, nil), false)))
		}, 400},
		{"state mismatch", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			s.state = flipFirst(s.state)
			return (e.finish(s, e.op.sign(t, e.claims(s, nil), false)))
		}, 400},
		{"state of another tab", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s1 := e.start(t, "wiki", "/")
			s2 := e.start(t, "wiki", "/")
			s2.flow = s1.flow
			return (e.finish(s2, e.op.sign(t, e.claims(s2, nil), false)))
		}, 400},
		{"state missing", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			code := e.op.issue(s.challenge, e.op.sign(t, e.claims(s, nil), false))
			return (e.get("/callback?code="+code, s.flow))
		}, 400},
		{"state twice", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			code := e.op.issue(s.challenge, e.op.sign(t, e.claims(s, nil), false))
			return (e.get("/callback?code="+code+"&state="+s.state+"&state="+s.state, s.flow))
		}, 400},
		{"code missing", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.get("/callback?state="+s.state, s.flow))
		}, 400},
		{"replayed code", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			code := e.op.issue(s.challenge, e.op.sign(t, e.claims(s, nil), false))
			target := "/callback?" + url.Values{"code": {code}, "state": {s.state}}.Encode()
			if w := e.get(target, s.flow); w.Code != http.StatusFound {
				t.Fatalf("first redemption: got status %d, want 302", w.Code)
			}
			return (e.get(target, s.flow))
		}, 400},
		{"code of another PKCE verifier", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			s.challenge = newBinding()
			return (e.finish(s, e.op.sign(t, e.claims(s, nil), false)))
		}, 400},
		{"provider error", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.get("/callback?error=access_denied&error_description=User+cancelled&state="+s.state, s.flow))
		}, 403},
		{"wrong nonce", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, map[string]any{"nonce": "other"}), false)))
		}, 400},
		{"missing nonce", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, map[string]any{"nonce": nil}), false)))
		}, 400},
		{"alg none", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, unsigned(e.claims(s, nil))))
		}, 400},
		{"wrong key", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, nil), true)))
		}, 400},
		{"wrong audience", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, map[string]any{"aud": "other-client"}), false)))
		}, 400},
		{"extra untrusted audience after ours", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, map[string]any{"aud": []string{clientID, "other-client"}, "azp": clientID}), false)))
		}, 400},
		{"extra untrusted audience before ours", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, map[string]any{"aud": []string{"https://graph.microsoft.com", clientID}}), false)))
		}, 400},
		{"azp of another client", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, map[string]any{"azp": "other-client"}), false)))
		}, 400},
		{"azp of another client, two audiences", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, map[string]any{"aud": []string{clientID, "other-client"}, "azp": "other-client"}), false)))
		}, 400},
		{"azp not a string", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, map[string]any{"azp": []string{clientID}}), false)))
		}, 400},
		{"azp empty string with two audiences", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, map[string]any{"aud": []string{clientID, ""}, "azp": ""}), false)))
		}, 400},
		{"expired id token", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, map[string]any{"exp": e.clock.Now().Add(-time.Minute).Unix()}), false)))
		}, 400},
		{"wrong issuer host", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, map[string]any{"iss": "https://evil.example/" + tenantA + "/v2.0"}), false)))
		}, 400},
		{"wrong tenant", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, map[string]any{"iss": e.op.URL() + "/" + tenantB + "/v2.0", "tid": tenantB}), false)))
		}, 400},
		{"tid differs from issuer", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, map[string]any{"tid": tenantB}), false)))
		}, 400},
		{"missing oid", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, map[string]any{"oid": nil}), false)))
		}, 400},
		{"missing tid", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, map[string]any{"tid": nil}), false)))
		}, 400},
		{"groups not strings", func(t *testing.T, e *testEnv) *httptest.ResponseRecorder {
			s := e.start(t, "wiki", "/")
			return (e.finish(s, e.op.sign(t, e.claims(s, map[string]any{"groups": []int{1, 2}}), false)))
		}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, nil)
			res := tt.run(t, e)
			assertRefused(t, res, tt.status)
		})
	}
}

// flipFirst changes the first character of s, whatever it is.
func flipFirst(s string) string {
	if s[0] == 'x' {
		return "y" + s[1:]
	}
	return "x" + s[1:]
}
