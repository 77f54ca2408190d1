package authfn

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"
)

// TestLambdaEvents feeds API Gateway HTTP API and function URL events
// (payload v2) through the Lambda adapter and checks that the callback's
// two Set-Cookie values arrive intact in the response's cookies array.
func TestLambdaEvents(t *testing.T) {
	tests := []struct {
		name   string
		domain string
		apiID  string
	}{
		{"api gateway http api", "auth.example.com", "a1b2c3d4e5"},
		{"function url", "abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws", "abcdefghijklmnopqrstuvwxyz012345"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, nil)
			adapter := httpadapter.NewV2(e.svc)
			event := func(path, rawQuery string, cookies ...string) events.APIGatewayV2HTTPRequest {
				return events.APIGatewayV2HTTPRequest{
					Version: "2.0", RouteKey: "$default", RawPath: path, RawQueryString: rawQuery,
					Cookies: cookies,
					Headers: map[string]string{"accept": "text/html", "host": tt.domain, "user-agent": "test"},
					RequestContext: events.APIGatewayV2HTTPRequestContext{
						AccountID: "anonymous", APIID: tt.apiID, DomainName: tt.domain, DomainPrefix: strings.Split(tt.domain, ".")[0],
						RequestID: "req-1", Stage: "$default", TimeEpoch: e.clock.Now().UnixMilli(),
						HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: path, Protocol: "HTTP/1.1", SourceIP: "192.0.2.1", UserAgent: "test"},
					},
				}
			}
			b := newBinding()
			resp, err := adapter.ProxyWithContext(t.Context(), event("/authorize", strings.TrimPrefix(e.authorizePath(t, "wiki", "/p", b), "/authorize?")))
			if err != nil || resp.StatusCode != http.StatusFound || len(resp.Cookies) != 1 || !strings.HasPrefix(resp.Cookies[0], FlowCookie+"-") {
				t.Fatalf("authorize: got %d cookies %q (%v), want 302 with the flow cookie", resp.StatusCode, resp.Cookies, err)
			}
			loc, _ := url.Parse(resp.Headers["Location"])
			s := &started{state: loc.Query().Get("state"), nonce: loc.Query().Get("nonce"), challenge: loc.Query().Get("code_challenge")}
			flow := strings.SplitN(resp.Cookies[0], ";", 2)[0]
			code := e.op.issue(s.challenge, e.op.sign(t, e.claims(s, nil), false))
			resp, err = adapter.ProxyWithContext(t.Context(), event("/callback", url.Values{"code": {code}, "state": {s.state}}.Encode(), "other=1", flow))
			if err != nil || resp.StatusCode != http.StatusFound {
				t.Fatalf("callback: got %d %q (%v), want 302", resp.StatusCode, resp.Body, err)
			}
			if len(resp.Cookies) != 2 {
				t.Fatalf("callback: got cookies %q, want 2", resp.Cookies)
			}
			var sess, cleared bool
			for _, c := range resp.Cookies {
				parsed, err := http.ParseSetCookie(c)
				if err != nil {
					t.Fatalf("cookie %q: %v", c, err)
				}
				switch {
				case parsed.Name == SessionCookie && parsed.Value != "" && parsed.HttpOnly && parsed.Secure && parsed.Path == "/" && parsed.MaxAge > 0:
					sess = true
				case strings.HasPrefix(parsed.Name, FlowCookie+"-") && parsed.MaxAge < 0:
					cleared = true
				}
			}
			if !sess || !cleared {
				t.Errorf("got cookies %q, want the session set and the flow cleared", resp.Cookies)
			}
			if _, ok := resp.Headers["Set-Cookie"]; ok {
				t.Errorf("Set-Cookie also in headers (would be folded): %q", resp.Headers["Set-Cookie"])
			}
			if !strings.HasPrefix(resp.Headers["Location"], "https://wiki.localhost:8443/.postern/callback?token=") {
				t.Errorf("got Location %q, want the app's callback", resp.Headers["Location"])
			}
		})
	}
}
