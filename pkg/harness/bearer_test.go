package harness

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/devidp"
	"github.com/postern/postern/pkg/edge"
	"github.com/postern/postern/pkg/meshnode"
	"github.com/postern/postern/pkg/session"
)

// call sends GET url with the bearer token through mesh node 0 and returns
// the response, its body read.
func call(tb testing.TB, h *Harness, url, token string, hdr ...string) (*http.Response, string) {
	tb.Helper()
	req, _ := http.NewRequestWithContext(tb.Context(), http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.MeshClient(0).Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func backendHeaders(tb testing.TB, body string) http.Header {
	tb.Helper()
	var got headersReply
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		tb.Fatalf("backend reply: %v: %s", err, body)
	}
	return http.Header(got.Headers)
}

// TestBearerTokensEndToEnd: the daemon, delegated and GitHub Actions
// callers of the records API, through a real mesh node, connector and
// the development provider's token endpoint.
func TestBearerTokensEndToEnd(t *testing.T) {
	logs := &SyncBuffer{}
	h := start(t, Options{Auth: true, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx := t.Context()
	daemon, err := h.ClientCredentials(ctx, DaemonClientID, DaemonSecret, APIIdentifier+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := h.ClientCredentials(ctx, StrangerClientID, DaemonSecret, APIIdentifier+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	delegated := func(login, scope string) string {
		tok, err := h.IdP().DelegatedToken(login, NativeClientID, scope)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	gh := func(repo, ref, aud string) string {
		tok, err := h.GitHub().Mint(devidp.GitHubClaims(repo, ref, "", aud), 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tests := []struct {
		name, path, token string
		status            int
		ptype, client     string
		userPrefix        string
	}{
		{"daemon with the app role", "/headers", daemon, 200, "app", DaemonClientID, devidp.DemoTenantID + "/"},
		{"daemon of the tenant without roles", "/headers", stranger, 403, "", "", ""},
		{"delegated, admin role, Records.Read", "/headers", delegated("bob", "api://records/Records.Read"), 200, "user", NativeClientID, devidp.DemoTenantID + "/"},
		{"delegated, support group", "/headers", delegated("alice", "api://records/Records.Read"), 200, "user", NativeClientID, devidp.DemoTenantID + "/"},
		{"delegated without the scope", "/headers", delegated("bob", "api://records/Records.Write"), 403, "", "", ""},
		{"delegated, /write needs Records.Write", "/write/x", delegated("bob", "api://records/Records.Read"), 403, "", "", ""},
		{"delegated, /write with Records.Write", "/write/x", delegated("bob", "api://records/Records.Read api://records/Records.Write"), 404, "", "", ""},
		{"GitHub Actions, main branch", "/headers", gh(GitHubRepo, "refs/heads/main", GitHubAudience), 200, "workload", "", "wif:github/repo:" + GitHubRepo},
		{"GitHub Actions, another branch", "/headers", gh(GitHubRepo, "refs/heads/evil", GitHubAudience), 403, "", "", ""},
		{"GitHub Actions, another repository", "/headers", gh("octo/other", "refs/heads/main", GitHubAudience), 403, "", "", ""},
		{"GitHub Actions, another audience", "/headers", gh(GitHubRepo, "refs/heads/main", "https://other.localhost"), 401, "", "", ""},
		{"garbage", "/headers", "not-a-token", 401, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := call(t, h, h.APIURL(0, tc.path), tc.token, "Accept", "text/html")
			if resp.StatusCode != tc.status {
				t.Fatalf("got %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("a bearer request was redirected to %s", loc)
			}
			switch tc.status {
			case 401:
				if c := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(c, `Bearer realm="records", error="invalid_token", error_description="`) {
					t.Errorf("WWW-Authenticate: got %q, want an invalid_token challenge", c)
				}
			case 403:
				if strings.Contains(tc.name, "scope") || strings.Contains(tc.name, "/write") {
					if c := resp.Header.Get("WWW-Authenticate"); !strings.Contains(c, `error="insufficient_scope"`) {
						t.Errorf("WWW-Authenticate: got %q, want insufficient_scope", c)
					}
				}
			case 200:
				hd := backendHeaders(t, body)
				if hd.Get("Authorization") != "" {
					t.Errorf("the bearer token reached the backend")
				}
				if got := hd.Get("X-Postern-Principal-Type"); got != tc.ptype {
					t.Errorf("principal type: got %q, want %q", got, tc.ptype)
				}
				if got := hd.Get("X-Postern-Client-Id"); got != tc.client {
					t.Errorf("client: got %q, want %q", got, tc.client)
				}
				if got := hd.Get("X-Postern-User"); !strings.HasPrefix(got, tc.userPrefix) {
					t.Errorf("user: got %q, want it to start with %q", got, tc.userPrefix)
				}
				checkAssertion(t, h, hd.Get("X-Postern-Assertion"), tc.ptype)
			}
		})
	}
	// Tokens never appear in the logs, whatever happened to them.
	for _, tc := range tests {
		if strings.Contains(logs.String(), tc.token) {
			t.Errorf("the token of %q appears in the logs", tc.name)
		}
	}
}

// checkAssertion verifies the signed assertion with the mesh's JWKS and
// checks that it names the principal type.
func checkAssertion(tb testing.TB, h *Harness, jwt, ptype string) {
	tb.Helper()
	resp, body := call(tb, h, h.APIURL(0, edge.JWKSPath), "")
	if resp.StatusCode != 200 {
		tb.Fatalf("jwks: %d", resp.StatusCode)
	}
	v := session.NewVerifier(session.VerifierConfig{Static: []byte(body)})
	a, err := v.VerifyAssertion(tb.Context(), jwt, APIAppHost)
	if err != nil {
		tb.Fatalf("assertion: %v", err)
	}
	if a.Type != ptype {
		tb.Errorf("assertion principal type: got %q, want %q", a.Type, ptype)
	}
}

// TestBearerRefusalsCountAsUnauthenticated: a client sending bad bearer
// tokens spends the per-address budget of unauthenticated answers like
// any other 401, and then gets 429.
func TestBearerRefusalsCountAsUnauthenticated(t *testing.T) {
	h := start(t, Options{Auth: true, Limits: meshnode.Limits{Unauth: edge.Limits{UnauthRate: 0.01, UnauthBurst: 3}}})
	for i := 0; i < 3; i++ {
		if resp, _ := call(t, h, h.APIURL(0, "/headers"), "bad"); resp.StatusCode != 401 {
			t.Fatalf("refusal %d: got %d, want 401", i, resp.StatusCode)
		}
	}
	resp, _ := call(t, h, h.APIURL(0, "/headers"), "bad")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("past the budget: got %d, want 429 with Retry-After", resp.StatusCode)
	}
	// A valid token still passes: authenticated requests never count.
	daemon, err := h.ClientCredentials(t.Context(), DaemonClientID, DaemonSecret, APIIdentifier+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := call(t, h, h.APIURL(0, "/headers"), daemon); resp.StatusCode != 200 {
		t.Fatalf("valid token past the budget: got %d: %s", resp.StatusCode, body)
	}
}
