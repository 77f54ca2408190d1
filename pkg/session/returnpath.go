package session

import (
	"fmt"
	"net/url"
	"strings"
)

// maxReturnPath bounds a return path, query included.
const maxReturnPath = 2048

// ValidReturnPath checks rd, the path (and optional query) to return to
// after sign-in, and returns it in canonical form. rd must be a path on the
// app's own host; it is refused with [ErrBadReturnPath] when it:
//
//   - is empty, longer than 2048 bytes, or does not start with a single "/"
//     ("//evil.com", "/\evil.com", "https:evil.com", "evil.com", absolute
//     URLs);
//   - contains a byte outside printable ASCII (control characters, tab, CR,
//     LF, space, DEL, raw UTF-8), a backslash or a "#";
//   - has an "@" in its path, an empty segment ("//") or a dot segment
//     ("/./", "/../"), which browsers never send;
//   - once percent-decoded, up to three times, starts with "//" or "/\",
//     or holds a control character, a backslash, an "@" in the path, an
//     empty or a dot segment ("/%2F%2Fevil.com", "/%252F%252Fevil.com",
//     "/%5Cevil.com", "/%09/evil.com", "/a/%2e%2e/b"); or has an invalid
//     percent escape. Decoded spaces, UTF-8 and "#" are data and allowed.
//
// The query may hold "/", "@" and ":" (such as "?next=/x"), but not raw
// controls, spaces or backslashes.
func ValidReturnPath(rd string) (string, error) {
	if reason := returnPathProblem(rd); reason != "" {
		return "", fmt.Errorf("check return path: %w: %s", ErrBadReturnPath, reason)
	}
	u, err := url.ParseRequestURI(rd)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return "", fmt.Errorf("check return path: %w: not a path", ErrBadReturnPath)
	}
	out := u.EscapedPath()
	if u.RawQuery != "" || u.ForceQuery {
		out += "?" + u.RawQuery
	}
	if reason := returnPathProblem(out); reason != "" { // re-encoding must not create a problem
		return "", fmt.Errorf("check return path: %w: %s", ErrBadReturnPath, reason)
	}
	return out, nil
}

// returnPathProblem returns why rd is unsafe, or "".
func returnPathProblem(rd string) string {
	switch {
	case rd == "":
		return "empty"
	case len(rd) > maxReturnPath:
		return "too long"
	}
	cur := rd
	for round := 0; ; round++ {
		if reason := rawPathProblem(cur, round > 0); reason != "" {
			return reason
		}
		if !strings.Contains(cur, "%") {
			return ""
		}
		if round == 3 {
			return "percent-encoded more than three times"
		}
		next, err := url.PathUnescape(cur)
		if err != nil {
			return "invalid percent escape"
		}
		cur = next
	}
}

// rawPathProblem checks one decoding round of a return path. Once decoded,
// spaces, non-ASCII bytes and "#" are data, not syntax, and are allowed.
func rawPathProblem(s string, decoded bool) string {
	if !strings.HasPrefix(s, "/") {
		return "must start with /"
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return "must not start with // or /\\"
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < ' ' || c == 0x7f:
			return "contains a control character"
		case !decoded && (c == ' ' || c > 0x7f):
			return "contains a space or non-ASCII character"
		case c == '\\':
			return "contains a backslash"
		case c == '#' && !decoded:
			return "contains a fragment"
		}
	}
	p, _, _ := strings.Cut(s, "?")
	switch {
	case strings.Contains(p, "@"):
		return "contains @ in the path"
	case strings.Contains(p, "//"):
		return "contains an empty path segment"
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return "contains a dot segment"
		}
	}
	return ""
}
