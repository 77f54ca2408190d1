package edge

import (
	"net/http"
	"strings"

	"github.com/postern/postern/pkg/catalog"
)

// identityPrefix is the prefix of Postern's default identity headers; every
// header that normalises to it is removed from client requests.
const identityPrefix = "x-postern-"

// normHeader lower-cases a header name and maps "_" to "-", the variants a
// backend framework may treat as the same header.
func normHeader(k string) string {
	return strings.ReplaceAll(strings.ToLower(k), "_", "-")
}

// stripIdentityHeaders removes every client-supplied header that could be
// taken for an identity header: the X-Postern- family and the app's own
// configured names, in any case and with "_" for "-".
func stripIdentityHeaders(h http.Header, app *catalog.App) {
	ih := app.IdentityHeaders
	names := [...]string{ih.User, ih.Email, ih.Name, ih.Groups, ih.Assertion}
	for k := range h {
		n := normHeader(k)
		if strings.HasPrefix(n, identityPrefix) {
			delete(h, k)
			continue
		}
		for _, name := range names {
			if name != "" && n == normHeader(name) {
				delete(h, k)
				break
			}
		}
	}
}

// stripPosternCookies removes Postern's own cookies from the Cookie header:
// they never reach a backend.
func stripPosternCookies(h http.Header) {
	lines := h["Cookie"]
	if len(lines) == 0 {
		return
	}
	var kept []string
	for _, line := range lines {
		for _, part := range strings.Split(line, ";") {
			p := strings.TrimSpace(part)
			name, _, _ := strings.Cut(p, "=")
			if p == "" || strings.HasPrefix(strings.TrimSpace(name), "__Host-postern") {
				continue
			}
			kept = append(kept, p)
		}
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = []string{strings.Join(kept, "; ")}
}

// addIdentityHeaders sets the app's identity headers from the verified
// claims of the request.
func addIdentityHeaders(h http.Header, st *reqState) {
	ih, id := st.app.IdentityHeaders, st.claims.Identity
	set := func(name, v string) {
		if name != "" && v != "" {
			h.Set(name, headerSafe(v))
		}
	}
	set(ih.User, id.Subject)
	set(ih.Email, id.Email)
	set(ih.Name, id.Name)
	set(ih.Groups, strings.Join(id.Groups, ","))
	if ih.Assertion != "" && st.auth != nil && st.auth.cfg.Assertions != nil {
		if jwt, err := st.auth.assertionFor(st.token, st.claims); err == nil {
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
