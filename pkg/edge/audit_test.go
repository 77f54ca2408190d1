package edge

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/postern/postern/pkg/revoke"
	"github.com/postern/postern/pkg/session"
)

// TestShownUser checks how a 403 page names the user: a user name, else an
// e-mail address, else a display name, and the principal id only when the
// provider gave none of them.
func TestShownUser(t *testing.T) {
	for _, tc := range []struct {
		id   session.Identity
		want string
	}{
		{session.Identity{Subject: "t/o", Username: "alice@corp", Email: "a@x", Name: "Alice"}, "alice@corp"},
		{session.Identity{Subject: "t/o", Email: "a@x", Name: "Alice"}, "a@x"},
		{session.Identity{Subject: "t/o", Name: "Alice"}, "Alice"},
		{session.Identity{Subject: "t/o"}, "t/o"},
	} {
		if got := shownUser(&tc.id); got != tc.want {
			t.Errorf("shownUser(%+v) = %q, want %q", tc.id, got, tc.want)
		}
	}
}

// TestAuditBearer checks that the audit stream covers bearer tokens as it
// does app cookies: a workload token allowed and denied by the policy (with
// the rule), an invalid token (bearer_refused), the same token once its
// workload is revoked (revoked), and the cookie for comparison; each
// record names how the caller was verified (auth) and what it is
// (principal), and a refused token names neither.
func TestAuditBearer(t *testing.T) {
	const workload = "wif:ci/repo:octo/app:ref:refs/heads/main"
	l := newDenyList(t, revoke.User("tid/someone-else", time.Now(), time.Now(), 0))
	e := newBearerEnv(t, l)
	var buf bytes.Buffer
	cfg := e.h.cfg
	cfg.Audit = slog.New(slog.NewJSONHandler(&buf, nil))
	cfg.NodeID = "n1"
	h := New(cfg)
	record := func(path, authz string, cookie bool) map[string]any {
		t.Helper()
		r := newReq(path)
		r.RemoteAddr = "10.1.2.3:4567"
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		if cookie {
			r.AddCookie(&http.Cookie{Name: AppCookie, Value: e.cookie})
		}
		w := httptest.NewRecorder()
		st := &reqState{rid: "r", clientIP: "10.1.2.3", cat: cfg.Catalog(), app: e.app}
		st.id = h.authenticate(w, r, e.app, st)
		buf.Reset()
		h.audit(r, st, w.Code)
		var rec map[string]any
		if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
			t.Fatalf("%s %.20s: no audit record: %v %q", path, authz, err, buf.String())
		}
		return rec
	}
	for _, tc := range []struct {
		name, path, authz string
		cookie            bool
		want              map[string]any // keys that must have these values; nil: must be absent
	}{
		{"workload allowed", "/home", "Bearer " + e.bearer, false, map[string]any{"decision": "allow", "reason": "policy",
			"rule": "app", "user": workload, "principal": "workload", "auth": "bearer", "node": "n1"}},
		{"workload denied", "/admin", "Bearer " + e.bearer, false, map[string]any{"decision": "deny", "reason": "policy",
			"rule": "path /admin", "principal": "workload", "auth": "bearer", "status": float64(403)}},
		{"invalid token", "/home", "Bearer nope", false, map[string]any{"decision": "deny", "reason": "bearer_refused",
			"status": float64(401), "principal": nil, "auth": nil}},
		{"cookie", "/home", "", true, map[string]any{"decision": "allow", "principal": "user", "auth": "cookie"}},
	} {
		rec := record(tc.path, tc.authz, tc.cookie)
		for k, want := range tc.want {
			if got, ok := rec[k]; want == nil && ok || want != nil && got != want {
				t.Errorf("%s: %s = %v, want %v (%v)", tc.name, k, got, want, rec)
			}
		}
		if rec["decision"] == "deny" && rec["detail"] == "" {
			t.Errorf("%s: a denial without detail: %v", tc.name, rec)
		}
	}
	if _, err := l.Add(revoke.Record{Entry: revoke.User(workload, time.Now(), time.Now(), 0)}); err != nil {
		t.Fatal(err)
	}
	if rec := record("/home", "Bearer "+e.bearer, false); rec["decision"] != "deny" || rec["reason"] != "revoked" || rec["status"] != float64(401) {
		t.Errorf("revoked workload: %v, want deny, revoked, 401", rec)
	}
}
