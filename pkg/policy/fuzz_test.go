package policy

import (
	"net/url"
	"path"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/postern/postern/pkg/session"
)

// fuzzRules nest a permissive rule under a strict one, and the reverse, so
// that a reading that lands under another prefix changes the answer.
var fuzzRules = []PathRule{
	{Prefix: "/admin", Allow: Allow{Roles: []string{"Admin"}}},
	{Prefix: "/admin/public"},
	{Prefix: "/files/secret", Allow: Allow{Roles: []string{"Admin"}}},
	{Prefix: "/data", Allow: Allow{Roles: []string{"Admin"}}},
	{Prefix: "/data/open"},
	{Prefix: "/caf%C3%A9", Allow: Allow{Roles: []string{"Admin"}}},
}

// FuzzDecide checks the invariant of path normalisation: when the policy
// allows a raw request path to a user, every way a backend may read that
// path — Go's (decode, then path.Clean or not), a servlet container's
// (";" parameters dropped) and, in IIS mode, Windows' (trailing dots and
// spaces and ":stream" dropped, case folded) — lands where the policy
// allows that user too.
func FuzzDecide(f *testing.F) {
	for _, s := range []string{
		"/", "/admin", "/admin/public/x", "/Admin", "//admin", "/admin;x", "/admin%3Bx", "/admin/public;x/y",
		"/admin//public", "/admin.", "/admin%20", "/admin./users", "/admin::$DATA", "/admin%3A%3A%24DATA",
		"/public/../admin", "/public/%2e%2e/admin", "/ADMINI~1", "/adm%C4%B1n", "/CAF%C3%89", "/data/open;x/../../admin",
		"/files/secret%2f", "/files%2Fsecret", "/%2e%2e", "/data%EF%BC%8Fx", "/admin/public%20", "/admin/public.",
		"/;x/admin", "/admin;/public", "/x?/admin", "/admin%", "/%61dmin/public/../x",
	} {
		f.Add(s)
	}
	user := &session.Identity{Subject: "t/u", TenantID: "t", Roles: []string{"User"}}
	var pols [2]*Policy
	for i, ci := range []bool{false, true} {
		p, err := New(Config{HomeTenant: "t", Allow: Allow{Roles: []string{"User"}}, Paths: fuzzRules, CaseInsensitive: ci})
		if err != nil {
			f.Fatal(err)
		}
		pols[i] = p
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for i, ci := range []bool{false, true} {
			if !pols[i].Decide(user, Request{RawPath: raw}).Allow {
				continue
			}
			for _, r := range backendReadings(raw, ci) {
				if !oracleAllows(r, ci) {
					t.Fatalf("case-insensitive=%v: the policy allows %q, but a backend reads it as %q, which the rules deny", ci, raw, r)
				}
			}
		}
	})
}

// backendReadings returns the paths backends may resolve raw to, computed
// independently of Normalize.
func backendReadings(raw string, ci bool) []string {
	raw, _, _ = strings.Cut(raw, "?")
	var out []string
	if u, err := url.PathUnescape(raw); err == nil {
		out = append(out, u, path.Clean(u)) // Go: a router on r.URL.Path, or ServeMux/FileServer
	}
	// A servlet container: ";" parameters dropped from each raw segment
	// before decoding, then dot segments and "//" resolved.
	segs := strings.Split(raw, "/")
	for i, s := range segs {
		segs[i], _, _ = strings.Cut(s, ";")
	}
	if u, err := url.PathUnescape(strings.Join(segs, "/")); err == nil {
		out = append(out, path.Clean("/"+u))
	}
	if ci {
		if u, err := url.PathUnescape(raw); err == nil && utf8.ValidString(u) {
			out = append(out, windowsReading(u, false), windowsReading(u, true))
		}
	}
	return out
}

// windowsReading resolves a decoded path as Windows does; dotDot says
// whether ".. " still counts as ".." once trimmed (both are tried).
func windowsReading(u string, dotDot bool) string {
	u = strings.ReplaceAll(u, `\`, "/")
	var out []string
	for _, seg := range strings.Split(u, "/") {
		seg, _, _ = strings.Cut(seg, ":")
		trimmed := strings.TrimRight(seg, ". ")
		switch {
		case seg == "." || (dotDot && trimmed == "" && strings.HasPrefix(seg, ".") && !strings.HasPrefix(seg, "..")):
			continue
		case seg == ".." || (dotDot && trimmed == "" && strings.HasPrefix(seg, "..")):
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			continue
		}
		if trimmed != "" {
			out = append(out, trimmed)
		}
	}
	return "/" + strings.Join(out, "/")
}

// oracleAllows applies fuzzRules to the resolved path p for a user who
// holds only the role "User", by whole segments and (ci) folded case.
func oracleAllows(p string, ci bool) bool {
	fold := func(s string) string {
		if !ci {
			return s
		}
		return strings.Map(func(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }, s)
	}
	p = fold(p)
	best, allowed := -1, true
	for _, r := range fuzzRules {
		prefix, _ := url.PathUnescape(r.Prefix)
		prefix = fold(prefix)
		if (p == prefix || strings.HasPrefix(p, prefix+"/")) && len(prefix) > best {
			best, allowed = len(prefix), len(r.Allow.Roles) == 0
		}
	}
	return allowed
}
