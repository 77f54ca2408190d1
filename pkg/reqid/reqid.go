// Package reqid makes the request ids that every Postern component puts on
// its log lines (request_id), its error pages and the X-Request-Id header
// sent to backends: 16 lower-case base32 characters (80 random bits), one
// format everywhere, so that an id quoted by a user can be searched for in
// every component's logs.
package reqid

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

var encoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// New returns a fresh random request id.
func New() string {
	var b [10]byte
	rand.Read(b[:])
	return strings.ToLower(encoding.EncodeToString(b[:]))
}

// Valid reports whether s has the form of a request id.
func Valid(s string) bool {
	if len(s) != 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}
