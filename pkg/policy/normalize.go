package policy

import (
	"fmt"
	"strings"
)

// Normalize returns rawPath, a raw request target in escaped form, as the
// backend will see it, by the rules in the package documentation; with
// caseInsensitive it also lower-cases ASCII letters. It returns
// [ErrBadPath] for a target it refuses. A path that needs no change is
// returned without allocating.
func Normalize(rawPath string, caseInsensitive bool) (string, error) {
	if strings.IndexByte(rawPath, '#') >= 0 {
		return "", fmt.Errorf("normalize path: %w: fragment", ErrBadPath)
	}
	if q := strings.IndexByte(rawPath, '?'); q >= 0 {
		rawPath = rawPath[:q]
	}
	if rawPath == "" || rawPath[0] != '/' {
		return "", fmt.Errorf("normalize path: %w: must start with /", ErrBadPath)
	}
	clean := true
	for i := 0; i < len(rawPath); i++ {
		c := rawPath[i]
		switch {
		case c <= ' ' || c >= 0x7f:
			return "", fmt.Errorf("normalize path: %w: control, space or non-ASCII byte", ErrBadPath)
		case c == '\\':
			return "", fmt.Errorf("normalize path: %w: backslash", ErrBadPath)
		case c == '%' || c == ';':
			clean = false
		case c == '/' && i+1 < len(rawPath) && (rawPath[i+1] == '/' || rawPath[i+1] == '.'):
			clean = false
		case caseInsensitive && 'A' <= c && c <= 'Z':
			clean = false
		}
	}
	if clean {
		return rawPath, nil
	}
	return normalizeSlow(rawPath, caseInsensitive)
}

// normalizeSlow decodes, splits and rebuilds the path.
func normalizeSlow(p string, caseInsensitive bool) (string, error) {
	decoded, err := decodeUnreserved(p)
	if err != nil {
		return "", err
	}
	trailing := strings.HasSuffix(decoded, "/")
	segs := strings.Split(decoded[1:], "/")
	out := make([]string, 0, len(segs))
	for i, seg := range segs {
		if j := strings.IndexByte(seg, ';'); j >= 0 {
			seg = seg[:j]
		}
		last := i == len(segs)-1
		switch seg {
		case "":
			continue
		case ".":
			trailing = trailing || last
			continue
		case "..":
			if len(out) == 0 {
				return "", fmt.Errorf("normalize path: %w: .. above the root", ErrBadPath)
			}
			out = out[:len(out)-1]
			trailing = trailing || last
			continue
		}
		out = append(out, seg)
	}
	var b strings.Builder
	b.Grow(len(p))
	for _, seg := range out {
		b.WriteByte('/')
		b.WriteString(seg)
	}
	if b.Len() == 0 || trailing {
		b.WriteByte('/')
	}
	s := b.String()
	if caseInsensitive {
		s = strings.ToLower(s)
	}
	return s, nil
}

// decodeUnreserved decodes escapes of unreserved characters, upper-cases
// the hex of the others, and refuses dangerous escapes.
func decodeUnreserved(p string) (string, error) {
	if !strings.Contains(p, "%") {
		return p, nil
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			return "", fmt.Errorf("normalize path: %w: invalid percent escape", ErrBadPath)
		}
		d := unhex(p[i+1])<<4 | unhex(p[i+2])
		switch {
		case d == '/' || d == '\\':
			return "", fmt.Errorf("normalize path: %w: encoded slash or backslash", ErrBadPath)
		case d < ' ' || d == 0x7f:
			return "", fmt.Errorf("normalize path: %w: encoded control character", ErrBadPath)
		case d == '%' && i+4 < len(p) && isHex(p[i+3]) && isHex(p[i+4]):
			return "", fmt.Errorf("normalize path: %w: double percent-encoding", ErrBadPath)
		case isUnreserved(d):
			b.WriteByte(d)
		default:
			b.WriteByte('%')
			b.WriteByte(upper(p[i+1]))
			b.WriteByte(upper(p[i+2]))
		}
		i += 2
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
