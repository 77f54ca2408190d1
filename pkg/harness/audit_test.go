package harness

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/testkit"
)

// TestAuditAllowAndDeny signs alice in through the development provider
// and checks the audit records of an allowed request, a request the
// policy denies and a request without a session, and the decision
// counters.
func TestAuditAllowAndDeny(t *testing.T) {
	audit := &SyncBuffer{}
	h := start(t, Options{Auth: true, Audit: audit})
	c := browserish(t, h)
	if resp, body := navigate(t, c, h.AppURL(0, "/headers"), "alice", ""); resp.StatusCode != 200 {
		t.Fatalf("sign-in: got %d: %s", resp.StatusCode, body)
	}
	if resp, _ := navigate(t, c, h.AppURL(0, "/admin"), "", ""); resp.StatusCode != 403 {
		t.Fatalf("/admin: got %d, want 403", resp.StatusCode)
	}
	find := func(path, decision string) map[string]any {
		for _, r := range testkit.Records(t, audit.String(), nil) {
			if r["path"] == path && r["decision"] == decision {
				return r
			}
		}
		t.Fatalf("no %s record for %s in the audit stream:\n%s", decision, path, audit.String())
		return nil
	}
	sign := find("/headers", "sign_in")
	if sign["reason"] != "no_session" || sign["user"] != "" {
		t.Errorf("first visit: %v, want sign_in for no_session and no user", sign)
	}
	allow := find("/headers", "allow")
	deny := find("/admin", "deny")
	for _, r := range []map[string]any{allow, deny} {
		if user, _ := r["user"].(string); !strings.Contains(user, "/") {
			t.Errorf("record %v lacks the principal id", r)
		}
		for _, k := range []string{"request_id", "app", "client_ip", "node", "rule", "reason", "status", "time", "msg"} {
			if _, ok := r[k]; !ok {
				t.Errorf("record %v lacks %s", r, k)
			}
		}
		if r["msg"] != "access_decision" || r["app"] != "smartmoney" || r["node"] != h.Meshes()[0].ID {
			t.Errorf("record %v: want msg access_decision, app smartmoney, this node", r)
		}
	}
	if allow["status"] != float64(200) || allow["connector"] == "" || allow["reason"] != "policy" {
		t.Errorf("allow record %v: want status 200, a connector, reason policy", allow)
	}
	if deny["status"] != float64(403) || deny["connector"] != "" || deny["reason"] != "policy" ||
		!strings.Contains(deny["rule"].(string), "/admin") || !strings.Contains(deny["detail"].(string), "SmartMoney.Admin") {
		t.Errorf("deny record %v: want status 403, no connector, the /admin rule and why", deny)
	}
	if allow["request_id"] == deny["request_id"] {
		t.Errorf("two requests share request id %v", allow["request_id"])
	}
	rec := httptest.NewRecorder()
	h.Meshes()[0].Node.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{
		`postern_auth_decisions_total{app="smartmoney",reason="policy",result="allow"}`,
		`postern_auth_decisions_total{app="smartmoney",reason="policy",result="deny"} 1`,
		`postern_auth_decisions_total{app="smartmoney",reason="no_session",result="sign_in"}`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
