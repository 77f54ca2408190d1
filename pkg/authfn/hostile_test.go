package authfn

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestAuthorizeHostile checks that /authorize refuses every malformed or
// hostile parameter with a clear page and sets no cookie.
func TestAuthorizeHostile(t *testing.T) {
	e := newTestEnv(t, nil)
	good := newBinding()
	tests := []struct {
		name   string
		query  string
		status int
	}{
		{"missing app", url.Values{"rd": {"/"}, "b": {good}}.Encode(), 400},
		{"unknown app", url.Values{"app": {"nope"}, "rd": {"/"}, "b": {good}}.Encode(), 400},
		{"passthrough app", url.Values{"app": {"open"}, "rd": {"/"}, "b": {good}}.Encode(), 400},
		{"app twice", "app=wiki&app=smartmoney&rd=/&b=" + good, 400},
		{"app with control chars", url.Values{"app": {"wiki\r\nX: y"}, "rd": {"/"}, "b": {good}}.Encode(), 400},
		{"rd protocol-relative", url.Values{"app": {"wiki"}, "rd": {"//evil.com"}, "b": {good}}.Encode(), 400},
		{"rd backslash", url.Values{"app": {"wiki"}, "rd": {`/\evil.com`}, "b": {good}}.Encode(), 400},
		{"rd scheme no slashes", url.Values{"app": {"wiki"}, "rd": {"https:evil.com"}, "b": {good}}.Encode(), 400},
		{"rd absolute URL", url.Values{"app": {"wiki"}, "rd": {"https://evil.com/x"}, "b": {good}}.Encode(), 400},
		{"rd encoded slashes", url.Values{"app": {"wiki"}, "rd": {"%2F%2Fevil.com"}, "b": {good}}.Encode(), 400},
		{"rd slash then encoded slashes", url.Values{"app": {"wiki"}, "rd": {"/%2F%2Fevil.com"}, "b": {good}}.Encode(), 400},
		{"rd double-encoded slashes", url.Values{"app": {"wiki"}, "rd": {"/%252F%252Fevil.com"}, "b": {good}}.Encode(), 400},
		{"rd encoded backslash", url.Values{"app": {"wiki"}, "rd": {"/%5Cevil.com"}, "b": {good}}.Encode(), 400},
		{"rd tab", url.Values{"app": {"wiki"}, "rd": {"/\t/evil.com"}, "b": {good}}.Encode(), 400},
		{"rd newline", url.Values{"app": {"wiki"}, "rd": {"/x\nSet-Cookie: a=b"}, "b": {good}}.Encode(), 400},
		{"rd leading space", url.Values{"app": {"wiki"}, "rd": {" /x"}, "b": {good}}.Encode(), 400},
		{"rd space inside", url.Values{"app": {"wiki"}, "rd": {"/ /evil.com"}, "b": {good}}.Encode(), 400},
		{"rd at trick", url.Values{"app": {"wiki"}, "rd": {"/@evil.com"}, "b": {good}}.Encode(), 400},
		{"rd userinfo", url.Values{"app": {"wiki"}, "rd": {"//wiki.localhost@evil.com"}, "b": {good}}.Encode(), 400},
		{"rd javascript", url.Values{"app": {"wiki"}, "rd": {"javascript:alert(1)"}, "b": {good}}.Encode(), 400},
		{"rd dot segments", url.Values{"app": {"wiki"}, "rd": {"/a/../../evil"}, "b": {good}}.Encode(), 400},
		{"rd bare host", url.Values{"app": {"wiki"}, "rd": {"evil.com"}, "b": {good}}.Encode(), 400},
		{"rd fragment", url.Values{"app": {"wiki"}, "rd": {"/x#frag"}, "b": {good}}.Encode(), 400},
		{"rd twice", "app=wiki&rd=/a&rd=/b&b=" + good, 400},
		{"b missing", url.Values{"app": {"wiki"}, "rd": {"/"}}.Encode(), 400},
		{"b short", url.Values{"app": {"wiki"}, "rd": {"/"}, "b": {good[:42]}}.Encode(), 400},
		{"b padded", url.Values{"app": {"wiki"}, "rd": {"/"}, "b": {good + "="}}.Encode(), 400},
		{"b bad alphabet", url.Values{"app": {"wiki"}, "rd": {"/"}, "b": {strings.Repeat("*", 43)}}.Encode(), 400},
		{"b std alphabet", url.Values{"app": {"wiki"}, "rd": {"/"}, "b": {"+" + good[1:]}}.Encode(), 400},
		{"b non-canonical last char", url.Values{"app": {"wiki"}, "rd": {"/"}, "b": {good[:42] + "B"}}.Encode(), 400},
		{"b twice", "app=wiki&rd=/&b=" + good + "&b=" + good, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.get("/authorize?" + tt.query)
			assertRefused(t, w, tt.status)
		})
	}
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
