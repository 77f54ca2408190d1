package devidp

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// graphContext is the @odata.context of a getMemberObjects answer.
const graphContext = "https://graph.microsoft.com/v1.0/$metadata#Collection(Edm.String)"

// Graph is a mock of the part of Microsoft Graph that sign-in needs:
// POST /v1.0/me/getMemberObjects and POST /v1.0/users/{id}/getMemberObjects
// with the published request and response bodies and error shape. It
// accepts only unexpired access tokens issued by its Provider. Get it with
// Provider.Graph; it is safe for concurrent use.
type Graph struct {
	p    *Provider
	fail atomic.Bool
}

var _ http.Handler = (*Graph)(nil)

// SetFailing makes every later Graph call fail with 500 and Graph's
// "generalException" error (true) or work again (false), for tests of the
// failure path.
func (g *Graph) SetFailing(fail bool) { g.fail.Store(fail) }

// graphError writes Graph's error JSON.
func graphError(w http.ResponseWriter, status int, code, msg string) {
	rid, _ := randomString(12)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", rid)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"innerError": map[string]string{"date": time.Now().UTC().Format("2006-01-02T15:04:05"), "request-id": rid, "client-request-id": rid},
	}})
}

// ServeHTTP answers getMemberObjects for the signed-in user or a named
// user.
func (g *Graph) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target, ok := graphTarget(r.URL.Path)
	if !ok {
		graphError(w, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+lastSegment(r.URL.Path)+"'.")
		return
	}
	if r.Method != http.MethodPost {
		graphError(w, http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
		return
	}
	claims, problem := g.authenticate(r)
	if claims == nil {
		graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", problem)
		return
	}
	if g.fail.Load() {
		graphError(w, http.StatusInternalServerError, "generalException", "General exception while processing.")
		return
	}
	if !readMemberObjectsBody(w, r) {
		graphError(w, http.StatusBadRequest, "Request_BadRequest", "The request body must be a JSON object with a boolean 'securityEnabledOnly'.")
		return
	}
	u, status, code, msg := g.resolve(claims, target)
	if status != 0 {
		graphError(w, status, code, msg)
		return
	}
	groups := u.Groups
	if groups == nil {
		groups = []string{}
	}
	w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"@odata.context": graphContext, "value": groups})
}

// graphTarget returns "me" or the user id of a getMemberObjects path.
func graphTarget(path string) (string, bool) {
	if path == "/v1.0/me/getMemberObjects" {
		return "me", true
	}
	rest, ok := strings.CutPrefix(path, "/v1.0/users/")
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, "/getMemberObjects")
	if !ok || id == "" || id == "me" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

func lastSegment(path string) string {
	return path[strings.LastIndex(path, "/")+1:]
}

// authenticate checks the Bearer access token; without claims, the string
// is Graph's message saying why.
func (g *Graph) authenticate(r *http.Request) (*accessClaims, string) {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || strings.TrimSpace(tok) == "" {
		return nil, "Access token is empty."
	}
	c, err := g.p.verifyAccessToken(strings.TrimSpace(tok))
	switch {
	case errors.Is(err, errExpired):
		return nil, "Lifetime validation failed, the token is expired."
	case err != nil:
		return nil, "Access token validation failure. Invalid audience."
	}
	return c, ""
}

// readMemberObjectsBody reports whether the body is the required
// {"securityEnabledOnly": bool}.
func readMemberObjectsBody(w http.ResponseWriter, r *http.Request) bool {
	var body struct {
		SecurityEnabledOnly *bool `json:"securityEnabledOnly"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	return dec.Decode(&body) == nil && body.SecurityEnabledOnly != nil
}

// resolve finds the user a call is about and checks the token may read it;
// a non-zero status is an error to write.
func (g *Graph) resolve(c *accessClaims, target string) (u User, status int, code, msg string) {
	scopes := strings.Fields(c.Scope)
	broad := slices.Contains(scopes, "GroupMember.Read.All") || slices.Contains(scopes, "Directory.Read.All")
	self := broad || slices.Contains(scopes, "User.Read")
	var ok bool
	if target == "me" {
		u, ok = g.p.store.userByOID(c.ObjectID)
	} else {
		for _, cand := range g.p.store.users {
			if (strings.EqualFold(cand.ObjectID, target) || strings.EqualFold(cand.Username, target)) && cand.TenantID == c.TenantID {
				u, ok = cand, true
			}
		}
	}
	if !ok {
		return User{}, http.StatusNotFound, "Request_ResourceNotFound", "Resource '" + target + "' does not exist or one of its queried reference-property objects are not present."
	}
	if !(broad || (self && u.ObjectID == c.ObjectID)) {
		return User{}, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
	}
	return u, 0, "", ""
}
