package tunnelhttp

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"net/textproto"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// Identity by reference. The identity headers a mesh node sets on a
// signed-in request (user, groups, the signed assertion: about a kilobyte)
// are the same on every request of one caller to one app while the
// assertion is cached. Carrying them through the tunnel on every request
// costs more than verifying the caller, so a mesh node may send them once
// and then only their digest:
//
//   - In full, the identity headers travel as ever, and HeaderIdentity
//     holds "<digest> <Name> <Name>…": the digest (IdentityDigest) and the
//     names of the headers it covers. A connector that understands it
//     checks the digest, keeps the block, and answers with HeaderIdentity
//     set to the digest: the block is held.
//   - By reference, HeaderIdentity holds only the digest and none of the
//     identity headers travel. The connector sets them from the block it
//     holds for that digest and app; holding none, it answers its own
//     error ErrIdentityUnknown without contacting the backend, and the
//     mesh node sends the request again in full. Any other answer means
//     it held the block (it does not say so again).
//
// A mesh node sends a reference only to a connector instance that has
// answered that it holds the digest: a connector that predates this
// strips HeaderIdentity as any Postern- header and never answers it, so it
// always gets the headers in full. The digest covers the app's id, so a
// block can never be expanded into another app's request.
const (
	// HeaderIdentity carries an identity block's digest, in full or by
	// reference (see above).
	HeaderIdentity = "Postern-Identity"
	// ErrIdentityUnknown is a connector's answer to a reference to an
	// identity block it does not hold (any more): send it in full.
	ErrIdentityUnknown = "identity_unknown"
)

// Identity limits: a block outside them is refused by a connector (sent
// in full, it still reaches the backend; it is just not held).
const (
	maxIdentityNames = 16
	maxIdentityBytes = 16 << 10
	digestLen        = 43 // base64url of SHA-256, unpadded
)

// IdentityDigest returns the digest naming the identity block of app:
// the header names with their values, in that order (one value each).
// Every part is length-prefixed, so no two blocks read the same.
func IdentityDigest(app string, names, values []string) string {
	bp := digestBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	put := func(s string) {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}
	put("postern-identity/1")
	put(app)
	for i, name := range names {
		put(name)
		put(values[i])
	}
	sum := sha256.Sum256(buf)
	*bp = buf
	digestBufs.Put(bp)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

var digestBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// IdentityFull is HeaderIdentity's value for a block sent in full.
func IdentityFull(digest string, names []string) string {
	return digest + " " + strings.Join(names, " ")
}

// ParseIdentity reads HeaderIdentity's value v: the digest, and the names
// of the headers sent in full (none for a reference). Names must be
// canonical, valid, distinct header names other than the Postern- ones.
func ParseIdentity(v string) (digest string, names []string, err error) {
	digest, rest, full := strings.Cut(v, " ")
	if len(digest) != digestLen || strings.IndexFunc(digest, notBase64URL) >= 0 {
		return "", nil, errors.New("identity digest: not 43 characters of base64url")
	}
	if !full {
		return digest, nil, nil
	}
	names = strings.Split(rest, " ")
	if len(names) > maxIdentityNames {
		return "", nil, errors.New("identity block: too many headers")
	}
	for i, n := range names {
		switch {
		case !httpguts.ValidHeaderFieldName(n) || textproto.CanonicalMIMEHeaderKey(n) != n:
			return "", nil, errors.New("identity block: invalid header name")
		case strings.HasPrefix(n, prefix):
			return "", nil, errors.New("identity block: internal header name")
		case httpguts.HeaderValuesContainsToken([]string{"Connection, Content-Length, Host, Keep-Alive, Proxy-Connection, Te, Trailer, Transfer-Encoding, Upgrade"}, n):
			return "", nil, errors.New("identity block: hop-by-hop or framing header name")
		}
		for _, m := range names[:i] {
			if m == n {
				return "", nil, errors.New("identity block: repeated header name")
			}
		}
	}
	return digest, names, nil
}

func notBase64URL(r rune) bool {
	return (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '_'
}

// IdentityValues returns the values, one per name, of a block sent in
// full in h, checking that each header is there exactly once with a
// valid value and that the block's digest for app is digest.
func IdentityValues(h http.Header, app, digest string, names []string) ([]string, error) {
	values := make([]string, len(names))
	size := 0
	for i, n := range names {
		vv := h[n]
		if len(vv) != 1 || !httpguts.ValidHeaderFieldValue(vv[0]) {
			return nil, errors.New("identity block: header " + n + " missing, repeated or invalid")
		}
		values[i] = vv[0]
		size += len(n) + len(vv[0])
	}
	if size > maxIdentityBytes {
		return nil, errors.New("identity block: too large")
	}
	if IdentityDigest(app, names, values) != digest {
		return nil, errors.New("identity block: digest does not match")
	}
	return values, nil
}
