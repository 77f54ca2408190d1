package edge

import (
	"net/http"
	"net/textproto"
	"strings"

	"github.com/postern/postern/pkg/catalog"
)

// Client headers the mesh removes before a request enters the tunnel. A
// backend written for another proxy (oauth2-proxy, Cloudflare Access,
// Envoy, an AWS load balancer, IAP, App Service authentication, Kong,
// Authelia...) trusts these to say who the user is, where they connect
// from, which path they asked for or whether the connection was secure;
// here they come from the client, so none may pass unless the app names it
// in pass_headers. Names match ignoring case and with "_" for "-", as
// backends that map one to the other (CGI, PHP, WSGI, nginx) read them.
// README.md lists them (a test keeps the two in step).
var (
	// strippedNames are removed by exact (normalised) name.
	strippedNames = map[string]struct{}{
		"forwarded": {}, "x-real-ip": {}, "x-client-ip": {}, "client-ip": {}, "x-cluster-client-ip": {},
		"true-client-ip": {}, "fastly-client-ip": {}, "x-proxyuser-ip": {}, "x-azure-clientip": {}, "x-azure-socketip": {},
		"x-request-id": {}, "x-rewrite-url": {}, "http2-settings": {},
		"remote-user": {}, "remote-email": {}, "remote-name": {}, "remote-groups": {},
		"x-remote-user": {}, "x-remote-email": {}, "x-remote-name": {}, "x-remote-group": {}, "x-remote-groups": {},
		"x-user": {}, "x-username": {}, "x-authenticated-user": {}, "x-authenticated-userid": {},
		"x-authenticated-scope": {}, "x-credential-identifier": {}, "x-anonymous-consumer": {},
		"x-client-cert": {}, "x-client-verify": {}, "x-client-dn": {},
	}
	// strippedPrefixes are removed by (normalised) prefix.
	strippedPrefixes = []string{
		identityPrefix,              // Postern's own identity headers
		"x-forwarded-",              // -for, -host, -proto, -user, -email, -groups, -uri, -path, -client-cert...
		"x-original-",               // -url, -uri, -host, -forwarded-for
		"x-auth-request-",           // oauth2-proxy
		"x-envoy-",                  // Envoy's internal headers, -original-path
		"cf-",                       // Cloudflare: -connecting-ip, -access-jwt-assertion, -visitor
		"x-amzn-oidc-",              // AWS ALB authentication
		"x-goog-authenticated-user", // Google IAP
		"x-goog-iap-",               // Google IAP
		"x-ms-client-principal",     // Azure App Service authentication
		"x-ms-token-",               // Azure App Service authentication
		"x-arr-",                    // IIS Application Request Routing (-ssl, -clientip)
		"x-pomerium-",               // Pomerium
		"x-authentik-",              // authentik
		"x-webauth-",                // Grafana's auth proxy
		"x-consumer-",               // Kong
		"x-ssl-",                    // nginx/HAProxy client certificates
		"ssl-client-",               // Apache client certificates
	}
)

// identityPrefix is the prefix of Postern's default identity headers.
const identityPrefix = "x-postern-"

// maxNormHeader is the longest header name normalised on the stack; longer
// names (rare) are normalised on the heap.
const maxNormHeader = 64

// stripClientHeaders removes from h every client header a backend could
// take for something only the mesh may say: the stripped names and
// prefixes above, and the app's own identity header names, except the
// headers the app passes through (pass_headers, exact name only: their
// "_" spellings are still removed).
func stripClientHeaders(h http.Header, app *catalog.App) {
	var buf [maxNormHeader]byte
	for k := range h {
		switch {
		case isIdentityHeader(k, &app.IdentityHeaders):
			delete(h, k)
		case strippedHeader(k, buf[:0]) && !app.PassesHeader(k):
			delete(h, k)
		}
	}
}

// strippedHeader reports whether the header named k is on the stripped
// list; buf is scratch space for the normalised name.
func strippedHeader(k string, buf []byte) bool {
	n := normHeader(k, buf)
	if len(n) < 2 {
		return false
	}
	if _, ok := strippedNames[string(n)]; ok { // no allocation: the compiler elides the conversion
		return true
	}
	if n[0] != 'x' && n[0] != 'c' && n[0] != 's' {
		return false // every prefix starts with one of these
	}
	for _, p := range strippedPrefixes {
		if len(n) >= len(p) && string(n[:len(p)]) == p {
			return true
		}
	}
	return false
}

// normHeader appends k to buf lower-cased with "_" mapped to "-", the
// variants a backend framework may treat as the same header.
func normHeader(k string, buf []byte) []byte {
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		buf = append(buf, c)
	}
	return buf
}

// sameHeader reports whether header names a and b are the same for a
// backend that ignores case and reads "_" as "-".
func sameHeader(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == '_' {
			x = '-'
		}
		if y == '_' {
			y = '-'
		}
		if x != y && lower(x) != lower(y) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// isIdentityHeader reports whether k is one of the app's identity header
// names, in any spelling.
func isIdentityHeader(k string, ih *catalog.IdentityHeaders) bool {
	for _, name := range ih.Names() {
		if name != "" && sameHeader(k, name) {
			return true
		}
	}
	return false
}

// stripPosternCookies removes Postern's own cookies (every name starting
// with AppCookie, in any cookie of any Cookie line) from the Cookie
// header: they never reach a backend. What is left is joined into one
// line. A single line that cannot hold one (the common case: a browser
// that only sends the app's own cookies) is left as it is, and a request
// carrying only Postern's cookies loses the header, both without
// allocating.
func stripPosternCookies(h http.Header) {
	lines := h["Cookie"]
	if len(lines) == 0 || len(lines) == 1 && !strings.Contains(lines[0], AppCookie) {
		return
	}
	kept, size := 0, 0
	eachCookie(lines, func(p string, ours bool) {
		if !ours {
			kept++
			size += len(p)
		}
	})
	if kept == 0 {
		delete(h, "Cookie")
		return
	}
	var b strings.Builder
	b.Grow(size + 2*(kept-1))
	eachCookie(lines, func(p string, ours bool) {
		if ours {
			return
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p)
	})
	h["Cookie"] = []string{b.String()}
}

// eachCookie calls fn with every non-empty "name=value" part of the
// Cookie lines, trimmed, and whether its name is one of Postern's.
func eachCookie(lines []string, fn func(part string, ours bool)) {
	for _, line := range lines {
		for rest := line; rest != ""; {
			var part string
			part, rest, _ = strings.Cut(rest, ";")
			p := strings.TrimSpace(part)
			if p == "" {
				continue
			}
			name, _, _ := strings.Cut(p, "=")
			fn(p, strings.HasPrefix(strings.TrimSpace(name), AppCookie))
		}
	}
}

// maxCookies is net/http's default bound on the cookies of a request
// (GODEBUG httpcookiemaxnum): past it, Request.Cookie finds none.
const maxCookies = 3000

// cookieValue returns the value of the first valid cookie called name in
// h's Cookie lines, exactly as (*http.Request).Cookie finds it (name a
// token, value of cookie-octets, optionally double-quoted, quotes
// removed; none past maxCookies cookies), but without allocating: it is
// on the path of every request to a pre-authenticated app.
func cookieValue(h http.Header, name string) (string, bool) {
	lines := h["Cookie"]
	n := 0
	for _, line := range lines {
		n += strings.Count(line, ";") + 1
	}
	if n > maxCookies {
		return "", false
	}
	for _, line := range lines {
		for rest := textproto.TrimString(line); rest != ""; {
			var part string
			part, rest, _ = strings.Cut(rest, ";")
			k, v, _ := strings.Cut(textproto.TrimString(part), "=")
			if textproto.TrimString(k) != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if validCookieValue(v) {
				return v, true
			}
		}
	}
	return "", false
}

// validCookieValue reports whether v is made of cookie-octets only, as
// net/http accepts them.
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}
