// Package revoke is the mesh's deny-list: the sessions, users and
// connectors whose credentials are taken back before they expire. Every
// mesh node holds the whole list, persists it, and checks it on every
// request to a pre-authenticated app (session and user entries) and on
// every attach, renew, stream and enrolment (connector entries).
//
// It sits beside the request path as a pure data structure: the edge
// (pkg/edge) asks it about each verified app token; the mesh node
// (pkg/meshnode) feeds it revocations from sign-outs, from the admin
// command and from the gossip (pkg/gossip), which spreads them. Lookups
// read an immutable snapshot through an atomic pointer and take no lock.
package revoke

import (
	"fmt"
	"regexp"
	"time"

	"github.com/postern/postern/pkg/wgkey"
)

// Kind is what an entry revokes.
type Kind string

// Entry kinds.
const (
	// KindSession revokes one sign-in session: every app token whose sid
	// is Subject, whenever it was minted.
	KindSession Kind = "session"
	// KindUser revokes a user: every app token of subject Subject
	// ("<tenant id>/<object id>") whose user authenticated at or before
	// Before.
	KindUser Kind = "user"
	// KindConnector revokes a connector: by id, or by WireGuard key when
	// Subject is KeyPrefix followed by the base64 public key.
	KindConnector Kind = "connector"
)

// KeyPrefix marks a connector entry that names a WireGuard public key
// rather than a connector id.
const KeyPrefix = "key:"

// Limits on entries.
const (
	// MaxSubjectLen bounds Subject in bytes.
	MaxSubjectLen = 256
	// MaxSpan bounds how long after it was issued an entry may live.
	MaxSpan = 400 * 24 * time.Hour
)

// Default lifetimes of entries, chosen to outlive every token they cover.
const (
	// DefaultSessionSpan is how long a session or user entry lives when
	// its issuer does not say: longer than a global session (12h by
	// default) plus the longest app token minted at its end (8h by
	// default).
	DefaultSessionSpan = 24 * time.Hour
	// DefaultConnectorSpan is how long a connector entry lives: longer
	// than the longest connector credential (366 days).
	DefaultConnectorSpan = 367 * 24 * time.Hour
)

// Entry is one revocation. Times are Unix seconds.
type Entry struct {
	// Kind is what is revoked.
	Kind Kind `json:"k"`
	// Subject names it: a sid, a user subject, a connector id, or
	// KeyPrefix and a connector's WireGuard public key.
	Subject string `json:"s"`
	// Before is, for a user entry, the second (Unix) up to which the
	// user's authentications are refused, that second included: a token's
	// auth_time has whole seconds, so a sign-in in the same second as the
	// revocation cannot be told to come after it and is refused too (the
	// user signs in again a second later). Zero for other kinds.
	Before int64 `json:"b,omitempty"`
	// Issued is when the revocation was made.
	Issued int64 `json:"i"`
	// Until is when the entry expires: every token it covers has expired
	// by then.
	Until int64 `json:"u"`
}

// subjectRE is what a Subject may look like: printable ASCII without
// spaces.
var subjectRE = regexp.MustCompile(`^[\x21-\x7e]+$`)

// Validate checks that e is a well-formed entry; now bounds its times.
func (e Entry) Validate(now time.Time) error {
	switch {
	case e.Kind != KindSession && e.Kind != KindUser && e.Kind != KindConnector:
		return fmt.Errorf("revoke: entry: kind %.20q: want session, user or connector", e.Kind)
	case e.Subject == "" || len(e.Subject) > MaxSubjectLen || !subjectRE.MatchString(e.Subject):
		return fmt.Errorf("revoke: entry: subject must be 1..%d printable characters", MaxSubjectLen)
	case e.Issued <= 0 || e.Until <= e.Issued:
		return fmt.Errorf("revoke: entry: issued and until must be set, until after issued")
	case time.Duration(e.Until-e.Issued)*time.Second > MaxSpan:
		return fmt.Errorf("revoke: entry: lives longer than %v", MaxSpan)
	case e.Issued > now.Add(time.Hour).Unix():
		return fmt.Errorf("revoke: entry: issued in the future")
	case e.Kind == KindUser && e.Before <= 0:
		return fmt.Errorf("revoke: entry: a user entry needs before")
	case e.Kind != KindUser && e.Before != 0:
		return fmt.Errorf("revoke: entry: only a user entry has before")
	}
	if k, ok := cutKey(e); ok {
		if _, err := wgkey.ParsePublic(k); err != nil {
			return fmt.Errorf("revoke: entry: connector key: %w", err)
		}
	}
	return nil
}

func cutKey(e Entry) (string, bool) {
	if e.Kind != KindConnector {
		return "", false
	}
	if len(e.Subject) > len(KeyPrefix) && e.Subject[:len(KeyPrefix)] == KeyPrefix {
		return e.Subject[len(KeyPrefix):], true
	}
	return "", false
}

// Expired reports whether e no longer covers anything at now.
func (e Entry) Expired(now time.Time) bool { return now.Unix() >= e.Until }

// id is e's identity in a list: one entry per kind and subject.
func (e Entry) id() string { return string(e.Kind) + "\x00" + e.Subject }

// merge returns the entry that covers what both e and o cover: the later
// Before and the later Until, the earlier Issued.
func (e Entry) merge(o Entry) Entry {
	e.Before = max(e.Before, o.Before)
	e.Until = max(e.Until, o.Until)
	e.Issued = min(e.Issued, o.Issued)
	return e
}

// covers reports whether e already covers everything o does.
func (e Entry) covers(o Entry) bool {
	return e.Before >= o.Before && e.Until >= o.Until
}

// Session returns an entry revoking session sid from now for span (zero:
// DefaultSessionSpan).
func Session(sid string, now time.Time, span time.Duration) Entry {
	if span <= 0 {
		span = DefaultSessionSpan
	}
	return Entry{Kind: KindSession, Subject: sid, Issued: now.Unix(), Until: now.Add(span).Unix()}
}

// User returns an entry revoking every authentication of subject before
// before, living span past it (zero: DefaultSessionSpan).
func User(subject string, before, now time.Time, span time.Duration) Entry {
	if span <= 0 {
		span = DefaultSessionSpan
	}
	from := now
	if before.After(from) {
		from = before
	}
	return Entry{Kind: KindUser, Subject: subject, Before: before.Unix(), Issued: now.Unix(), Until: from.Add(span).Unix()}
}

// Connector returns an entry revoking connector id from now for span
// (zero: DefaultConnectorSpan).
func Connector(id string, now time.Time, span time.Duration) Entry {
	if span <= 0 {
		span = DefaultConnectorSpan
	}
	return Entry{Kind: KindConnector, Subject: id, Issued: now.Unix(), Until: now.Add(span).Unix()}
}

// ConnectorKey returns an entry revoking the connector with WireGuard key
// pub from now for span (zero: DefaultConnectorSpan).
func ConnectorKey(pub wgkey.Public, now time.Time, span time.Duration) Entry {
	return Connector(KeyPrefix+pub.String(), now, span)
}

// Record is an entry with the proof that lets another node accept it: the
// admin command's authority-signed statement for user and connector
// entries; a session entry from a sign-out needs none, because any mesh
// node may revoke a session and the gossip envelope says which one did.
type Record struct {
	Entry
	// Proof is the authority-signed revocation (a compact JWS) that
	// carries Entry; empty for a session entry made by a mesh node.
	Proof string `json:"p,omitempty"`
}
