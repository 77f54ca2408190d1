package edge

import (
	"net/http"
	"net/textproto"
	"strings"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/tunnelhttp"
)

// takeIdentity keeps the app's identity headers, set from the verified
// claims of the request, as st's identity block. The transport adds them
// to each attempt, in full or by reference (see identityBlock.header).
// A block with an assertion is built once per token and app while the
// assertion is reused (auth.identityFor).
func takeIdentity(st *reqState) {
	if st.app.IdentityHeaders.Assertion != "" && st.auth != nil && st.auth.cfg.Assertions != nil {
		st.ident = *st.auth.identityFor(st)
		return
	}
	buildIdentity(&st.ident, st, "")
}

// buildIdentity fills b with st's identity headers, and with the signed
// assertion jwt unless it is empty. The values share one backing array:
// one allocation, however many headers the app names.
func buildIdentity(b *identityBlock, st *reqState, jwt string) {
	ih, id := &st.app.IdentityHeaders, st.id
	b.values = make([]string, 0, identityNames)
	set := func(name, v string) {
		if name != "" && v != "" {
			b.names[len(b.values)] = textproto.CanonicalMIMEHeaderKey(name)
			b.values = append(b.values, headerSafe(v))
		}
	}
	set(ih.User, id.Subject)
	set(ih.Email, id.Email)
	set(ih.Name, id.Name)
	set(ih.Groups, strings.Join(id.Groups, ","))
	set(ih.Type, id.PrincipalType())
	set(ih.Client, id.ClientID)
	set(ih.Assertion, jwt)
}

// identityNames is how many identity headers an app may name; the
// assignment below fails to compile when catalog names more.
const identityNames = 7

var _ [identityNames]string = (&catalog.IdentityHeaders{}).Names()

// identityBlock is a request's identity headers: names[i] carries
// values[i].
type identityBlock struct {
	names  [identityNames]string
	values []string
	digest []string // {the digest}, computed on first use
}

// Names returns the block's header names.
func (b *identityBlock) Names() []string { return b.names[:len(b.values)] }

// Digest returns the block's digest for app (tunnelhttp.IdentityDigest).
func (b *identityBlock) Digest(app string) string {
	if b.digest == nil {
		b.digest = []string{tunnelhttp.IdentityDigest(app, b.Names(), b.values)}
	}
	return b.digest[0]
}

// header returns h with b added in form: plain (the headers), in full
// (the headers and the digest with their names) or by reference (only
// the digest). own says h may be changed in place: on a request's first
// send, which nothing else reads; otherwise the result is a copy, since
// an abandoned attempt may still be writing h.
func (b *identityBlock) header(h http.Header, app string, form identityForm, own bool) http.Header {
	if len(b.values) == 0 {
		return h
	}
	if !own {
		c := make(http.Header, len(h)+len(b.values)+1)
		for k, v := range h {
			c[k] = v
		}
		h = c
	}
	delete(h, tunnelhttp.HeaderIdentity)
	names := b.Names()
	if form == identityRef {
		for _, n := range names {
			delete(h, n)
		}
		b.Digest(app)
		h[tunnelhttp.HeaderIdentity] = b.digest
		return h
	}
	for i, n := range names {
		h[n] = b.values[i : i+1 : i+1]
	}
	if form == identityFull {
		h[tunnelhttp.HeaderIdentity] = []string{tunnelhttp.IdentityFull(b.Digest(app), names)}
	}
	return h
}

// headerSafe drops control characters, which a header value cannot carry.
func headerSafe(v string) string {
	i := 0
	for i < len(v) && v[i] >= 0x20 && v[i] != 0x7f {
		i++
	}
	if i == len(v) {
		return v // the usual case: nothing to drop, no rune decoding
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, v)
}
