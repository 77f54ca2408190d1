package policy

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxReadings is the number of readings a path can have: ";" as a
// parameter separator or as a character, times "//" collapsed or kept.
const maxReadings = 4

// readings are the distinct ways backends resolve one request path, each
// normalised (see the package documentation). The first is the canonical
// one: parameters stripped, repeated slashes collapsed.
type readings struct {
	n int
	p [maxReadings]string
}

func (r *readings) add(s string) {
	for _, have := range r.p[:r.n] {
		if have == s {
			return
		}
	}
	r.p[r.n] = s
	r.n++
}

// Normalize returns rawPath, a raw request target in escaped form, as the
// policy matches it, by the rules in the package documentation; with
// caseInsensitive (IIS mode) it also folds case and refuses the spellings
// Windows resolves to another name. It returns [ErrBadPath] for a target it
// refuses. A path that needs no change is returned without allocating.
//
// The result is the canonical reading; a path with ";" or "//" also has
// others, which [Policy.Decide] checks as well.
func Normalize(rawPath string, caseInsensitive bool) (string, error) {
	r, err := readPath(rawPath, caseInsensitive)
	if err != nil {
		return "", err
	}
	return r.p[0], nil
}

// readPath returns every reading of rawPath, or an error wrapping
// [ErrBadPath].
func readPath(rawPath string, ci bool) (readings, error) {
	if strings.IndexByte(rawPath, '#') >= 0 {
		return readings{}, badPath("fragment")
	}
	if q := strings.IndexByte(rawPath, '?'); q >= 0 {
		rawPath = rawPath[:q]
	}
	if rawPath == "" || rawPath[0] != '/' {
		return readings{}, badPath("must start with /")
	}
	clean := true
	for i := 0; i < len(rawPath); i++ {
		c := rawPath[i]
		switch {
		case c <= ' ' || c >= 0x7f:
			return readings{}, badPath("control, space or non-ASCII byte")
		case c == '\\':
			return readings{}, badPath("backslash")
		case c == '%' || c == ';':
			clean = false
		case c == '/' && i+1 < len(rawPath) && (rawPath[i+1] == '/' || rawPath[i+1] == '.'):
			clean = false
		case ci && ('A' <= c && c <= 'Z' || c == ':' || c == '~'):
			clean = false
		case ci && c == '.' && (i+1 == len(rawPath) || rawPath[i+1] == '/'):
			clean = false
		}
	}
	if clean {
		return readings{n: 1, p: [maxReadings]string{rawPath}}, nil
	}
	return readSlow(rawPath, ci)
}

func badPath(why string) error { return fmt.Errorf("normalize path: %w: %s", ErrBadPath, why) }

// readSlow decodes the path, checks every segment and builds the readings.
func readSlow(p string, ci bool) (readings, error) {
	decoded, err := decode(p)
	if err != nil {
		return readings{}, err
	}
	if err := checkRunes(decoded, ci); err != nil {
		return readings{}, err
	}
	segs := strings.Split(decoded[1:], "/")
	hasParams, hasEmpty := false, false
	for i, seg := range segs {
		bare, _, params := strings.Cut(seg, ";")
		hasParams = hasParams || params
		hasEmpty = hasEmpty || (bare == "" && i < len(segs)-1)
		if err := checkSegment(seg, ci); err != nil {
			return readings{}, err
		}
		if params {
			if err := checkSegment(bare, ci); err != nil {
				return readings{}, err
			}
		}
	}
	var r readings
	for _, v := range [...]struct{ strip, keepEmpty bool }{{true, false}, {false, false}, {true, true}, {false, true}} {
		if (!v.strip && !hasParams) || (v.keepEmpty && !hasEmpty) {
			continue
		}
		r.add(join(segs, v.strip, v.keepEmpty, ci))
	}
	return r, nil
}

// checkSegment refuses a segment that some backend reads as another path:
// "." and ".." (browsers resolve them before sending, so only a hand-made
// request carries them), and in IIS mode a trailing dot or space, an NTFS
// stream (":"), and an 8.3 short name ("~" and a digit), which Windows all
// resolve to another name.
func checkSegment(seg string, ci bool) error {
	if seg == "." || seg == ".." {
		return badPath("dot segment")
	}
	if !ci || seg == "" {
		return nil
	}
	switch last := seg[len(seg)-1]; {
	case last == '.' || last == ' ':
		return badPath("trailing dot or space in a segment (Windows drops them)")
	case strings.IndexByte(seg, ':') >= 0:
		return badPath("colon in a segment (NTFS stream)")
	}
	for i := 0; i+1 < len(seg); i++ {
		if seg[i] == '~' && '0' <= seg[i+1] && seg[i+1] <= '9' {
			return badPath("8.3 short name")
		}
	}
	return nil
}

// join rebuilds one reading from the decoded segments: with strip, ";"
// starts parameters that are dropped (servlet containers, Spring); with
// keepEmpty, the empty segments of "//" stay (backends that do not collapse
// slashes). A trailing slash stays. With ci, case is folded.
func join(segs []string, strip, keepEmpty, ci bool) string {
	var b strings.Builder
	for i, seg := range segs {
		if strip {
			seg, _, _ = strings.Cut(seg, ";")
		}
		last := i == len(segs)-1
		if seg == "" && (!keepEmpty || last) {
			continue
		}
		b.WriteByte('/')
		b.WriteString(seg)
	}
	if b.Len() == 0 || segs[len(segs)-1] == "" {
		b.WriteByte('/')
	}
	if !ci {
		return b.String()
	}
	return foldCase(b.String())
}

// foldCase folds s as Windows compares names (NTFS upper-cases both
// sides): every rune becomes the lower case of its upper case, so "ς" and
// "σ" meet, as do "/ADMIN" and "/admin".
func foldCase(s string) string {
	return strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf {
			if 'A' <= r && r <= 'Z' {
				return r + 'a' - 'A'
			}
			return r
		}
		return unicode.ToLower(unicode.ToUpper(r))
	}, s)
}

// decode percent-decodes p. It refuses encoded "/" and "\" ("%2f",
// "%5c"), encoded controls ("%00"-"%1f", "%7f"), an encoded "%" that
// starts another escape ("%2561", double encoding) and invalid escapes.
// An encoded ";" ("%3b") becomes ";", so it is read both ways as the
// literal one is.
func decode(p string) (string, error) {
	if strings.IndexByte(p, '%') < 0 {
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
			return "", badPath("invalid percent escape")
		}
		d := unhex(p[i+1])<<4 | unhex(p[i+2])
		switch {
		case d == '/' || d == '\\':
			return "", badPath("encoded slash or backslash")
		case d < ' ' || d == 0x7f:
			return "", badPath("encoded control character")
		case d == '%' && i+4 < len(p) && isHex(p[i+3]) && isHex(p[i+4]):
			return "", badPath("double percent-encoding")
		}
		b.WriteByte(d)
		i += 2
	}
	return b.String(), nil
}

// checkRunes refuses decoded bytes that are not UTF-8 (overlong forms
// such as "%c0%ae" for "." included) and C1 control characters; in IIS
// mode also characters that Windows may turn into ASCII: those whose case
// mapping is ASCII ("ı" upper-cases to "I", the Kelvin sign lower-cases to
// "k") and the full-width and look-alike forms of "/", "\", "." and ":"
// that best-fit conversion maps to ASCII.
func checkRunes(s string, ci bool) error {
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return badPath("encoded bytes that are not UTF-8")
		}
		i += size
		if r <= 0x9f {
			return badPath("encoded control character")
		}
		if ci && windowsAlias(r) {
			return badPath(fmt.Sprintf("character %U, which Windows may read as ASCII", r))
		}
	}
	return nil
}

// windowsAlias reports whether Windows may read the non-ASCII rune r as
// an ASCII character.
func windowsAlias(r rune) bool {
	if unicode.ToUpper(r) < utf8.RuneSelf || unicode.ToLower(r) < utf8.RuneSelf {
		return true
	}
	if 0xff01 <= r && r <= 0xff5e { // full-width ASCII
		return true
	}
	switch r {
	case 0x2215, 0x2216, 0x2044, 0x29f5, 0x29f8, 0x29f9, 0xfe68, // slashes and backslashes
		0x2024, 0xfe52, 0x2219, // dots
		0x2236, 0xfe55, 0xa789, 0x02d0: // colons
		return true
	}
	return false
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

// HasEncodedControl reports whether the path of the raw request target
// (before any "?") carries a percent-encoded control character: "%00" to
// "%1f", "%7f", or a C1 control in UTF-8 ("%c2%80" to "%c2%9f"). The edge
// refuses such targets for every app, with or without a policy. It does
// not allocate.
func HasEncodedControl(rawPath string) bool {
	if q := strings.IndexByte(rawPath, '?'); q >= 0 {
		rawPath = rawPath[:q]
	}
	for i := strings.IndexByte(rawPath, '%'); i >= 0 && i+2 < len(rawPath); {
		if isHex(rawPath[i+1]) && isHex(rawPath[i+2]) {
			d := unhex(rawPath[i+1])<<4 | unhex(rawPath[i+2])
			if d < ' ' || d == 0x7f {
				return true
			}
			if d == 0xc2 && i+5 < len(rawPath) && rawPath[i+3] == '%' && isHex(rawPath[i+4]) && isHex(rawPath[i+5]) {
				if e := unhex(rawPath[i+4])<<4 | unhex(rawPath[i+5]); 0x80 <= e && e <= 0x9f {
					return true
				}
			}
		}
		j := strings.IndexByte(rawPath[i+1:], '%')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}
