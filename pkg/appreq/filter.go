package appreq

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
)

// A session filter names, compactly, every group and role that some
// policy of the catalogue names: the global session on the auth host keeps
// only those of the user's groups and roles (its cookie stays small, and
// holds nothing the mesh does not use), and app tokens are minted from it.
// Each name is kept as the first 8 bytes of SHA-256("g:"+group) or
// SHA-256("r:"+role), sorted, so that a catalogue naming 200 groups costs
// 1.6 KB rather than 7 KB in the URL and the flow cookie. A collision
// (about 2^-64 per pair) only keeps an unused group in the session: app
// tokens are cut by exact name ([Request.Groups]).
//
// The session records the filter's digest. A request whose filter differs
// (the catalogue's policies changed since the session began) does not use
// the session's groups and roles, which may lack a newly named group: the
// user signs in again at the provider (silently, with its own session).

const filterEntry = 8

// maxFilterEntries bounds a filter (4096 names, 44 KB: past MaxSize).
const maxFilterEntries = 4096

// Filter is a decoded session filter. The zero value keeps nothing.
type Filter struct {
	entries []byte // sorted, filterEntry bytes each
}

func entry(kind, name string) []byte {
	sum := sha256.Sum256([]byte(kind + ":" + name))
	return sum[:filterEntry]
}

// NewFilter returns the encoded session filter of groups and roles.
func NewFilter(groups, roles []string) string {
	es := make([][]byte, 0, len(groups)+len(roles))
	for _, g := range groups {
		es = append(es, entry("g", g))
	}
	for _, r := range roles {
		es = append(es, entry("r", r))
	}
	slices.SortFunc(es, bytes.Compare)
	es = slices.CompactFunc(es, bytes.Equal)
	return base64.RawURLEncoding.EncodeToString(bytes.Join(es, nil))
}

// ParseFilter decodes an encoded filter; "" is the empty filter.
func ParseFilter(s string) (Filter, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b)%filterEntry != 0 || len(b)/filterEntry > maxFilterEntries {
		return Filter{}, fmt.Errorf("%w: session filter is not base64url of 8-byte entries", ErrMalformed)
	}
	for i := filterEntry; i < len(b); i += filterEntry {
		if bytes.Compare(b[i-filterEntry:i], b[i:i+filterEntry]) >= 0 {
			return Filter{}, fmt.Errorf("%w: session filter entries are not sorted and unique", ErrMalformed)
		}
	}
	return Filter{entries: b}, nil
}

func (f Filter) has(e []byte) bool {
	lo, hi := 0, len(f.entries)/filterEntry
	for lo < hi {
		m := (lo + hi) / 2
		switch c := bytes.Compare(f.entries[m*filterEntry:(m+1)*filterEntry], e); {
		case c == 0:
			return true
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return false
}

// Groups returns the items of groups the filter names.
func (f Filter) Groups(groups []string) []string { return f.keep("g", groups) }

// Roles returns the items of roles the filter names.
func (f Filter) Roles(roles []string) []string { return f.keep("r", roles) }

func (f Filter) keep(kind string, names []string) []string {
	var out []string
	for _, n := range names {
		if f.has(entry(kind, n)) {
			out = append(out, n)
		}
	}
	return out
}

// Digest returns a short digest of the encoded filter s, which the global
// session records.
func Digest(s string) string {
	sum := sha256.Sum256([]byte("postern session filter\x00" + s))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}
