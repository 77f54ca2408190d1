package edge

import (
	"net/http"
	"net/textproto"
	"strings"
)

// addIdentityHeaders sets the app's identity headers from the verified
// claims of the request. The values share one backing array: one
// allocation, however many headers the app names.
func addIdentityHeaders(h http.Header, st *reqState) {
	ih, id := &st.app.IdentityHeaders, st.id
	vals := make([]string, 0, len(ih.Names()))
	set := func(name, v string) {
		if name != "" && v != "" {
			vals = append(vals, headerSafe(v))
			n := len(vals)
			h[textproto.CanonicalMIMEHeaderKey(name)] = vals[n-1 : n : n]
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
			set(ih.Assertion, jwt)
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
