package edge

import (
	"net/http"
	"strings"
)

// addIdentityHeaders sets the app's identity headers from the verified
// claims of the request.
func addIdentityHeaders(h http.Header, st *reqState) {
	ih, id := st.app.IdentityHeaders, st.id
	set := func(name, v string) {
		if name != "" && v != "" {
			h.Set(name, headerSafe(v))
		}
	}
	set(ih.User, id.Subject)
	set(ih.Email, id.Email)
	set(ih.Name, id.Name)
	set(ih.Groups, strings.Join(id.Groups, ","))
	set(ih.Type, id.PrincipalType())
	set(ih.Client, id.ClientID)
	if ih.Assertion != "" && st.auth != nil && st.auth.cfg.Assertions != nil {
		if jwt, err := st.auth.assertionFor(st.token, id, st.app.Host); err == nil {
			h.Set(ih.Assertion, jwt)
		}
	}
}

// headerSafe drops control characters, which a header value cannot carry.
func headerSafe(v string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, v)
}
