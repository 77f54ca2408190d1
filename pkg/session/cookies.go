package session

import (
	"net/http"
	"strings"
)

// MaxFlowCookies bounds the sign-ins one browser keeps in flight on a host:
// each has its own cookie (the edge's binding, the auth functions' flow
// state), so that sign-ins started in several tabs all complete; past the
// bound the older ones are dropped.
const MaxFlowCookies = 8

// CookiesWithPrefix returns r's cookies whose names start with prefix, such
// as the per-sign-in cookies of MaxFlowCookies.
func CookiesWithPrefix(r *http.Request, prefix string) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range r.Cookies() {
		if strings.HasPrefix(c.Name, prefix) {
			out = append(out, c)
		}
	}
	return out
}
