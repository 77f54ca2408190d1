package revoke

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postern/postern/pkg/wgkey"
)

// MaxEntries bounds the list, so that a flood cannot exhaust memory.
const MaxEntries = 1 << 20

// recentLimit is how many entries the small copy-on-write layer of the
// snapshot holds before it is folded into the large one: adding an entry
// copies at most this many, and a fold (every recentLimit additions)
// copies the whole list once.
const recentLimit = 512

// tables are the lookup maps of one snapshot layer.
type tables struct {
	sessions   map[string]struct{}
	users      map[string]int64 // subject → refuse authentications before
	connectors map[string]struct{}
}

func newTables(n int) *tables {
	return &tables{sessions: make(map[string]struct{}, n), users: make(map[string]int64), connectors: make(map[string]struct{})}
}

func (t *tables) add(e Entry) {
	switch e.Kind {
	case KindSession:
		t.sessions[e.Subject] = struct{}{}
	case KindUser:
		t.users[e.Subject] = max(t.users[e.Subject], e.Before)
	case KindConnector:
		t.connectors[e.Subject] = struct{}{}
	}
}

func (t *tables) len() int { return len(t.sessions) + len(t.users) + len(t.connectors) }

func (t *tables) clone() *tables {
	c := newTables(len(t.sessions))
	for k := range t.sessions {
		c.sessions[k] = struct{}{}
	}
	for k, v := range t.users {
		c.users[k] = v
	}
	for k := range t.connectors {
		c.connectors[k] = struct{}{}
	}
	return c
}

// snapshot is an immutable view: a large base and a small recent layer.
type snapshot struct {
	base, recent *tables
}

// List is a persisted deny-list. Lookups (SessionRevoked, UserRevoked,
// ConnectorRevoked) are lock-free reads of an immutable snapshot; Add and
// Prune build a new one. It is safe for concurrent use.
//
// The file is a journal: one JSON record per line, appended and synced on
// every Add, rewritten by Prune. A torn last line (a crash during an
// append that was never acknowledged) is skipped; any other bad line
// refuses to open, because starting with fewer revocations would let
// revoked credentials back in.
type List struct {
	path string
	now  func() time.Time
	snap atomic.Pointer[snapshot]

	mu      sync.Mutex        // guards the following and the file
	recs    map[string]Record // by Entry.id
	journal int               // lines in the file
}

// Open loads the list from path, creating an empty file (mode 0600) when
// it does not exist. now is the clock; nil means time.Now.
func Open(path string, now func() time.Time) (*List, error) {
	if path == "" {
		return nil, errors.New("revoke: open: empty path")
	}
	if now == nil {
		now = time.Now
	}
	l := &List{path: path, now: now, recs: map[string]Record{}}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := l.rewriteLocked(); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("revoke: open: %w", err)
	default:
		if err := l.load(data); err != nil {
			return nil, err
		}
	}
	l.rebuildLocked()
	return l, nil
}

// fileHeader is the first line of the journal.
type fileHeader struct {
	Version int `json:"postern_revocations"`
}

func (l *List) load(data []byte) error {
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) == 0 || len(bytes.TrimSpace(lines[0])) == 0 {
		return fmt.Errorf("revoke: open %s: empty file, refusing to start without the revocations it held (restore it, or delete it to start with none)", l.path)
	}
	var h fileHeader
	if err := json.Unmarshal(lines[0], &h); err != nil || h.Version != 1 {
		return fmt.Errorf("revoke: open %s: line 1 is not a version 1 header, refusing to start with fewer revocations", l.path)
	}
	now := l.now()
	for i, line := range lines[1:] {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil || r.Validate(now) != nil {
			if i == len(lines)-2 && !bytes.HasSuffix(data, []byte("\n")) {
				break // torn final append: it was never acknowledged
			}
			return fmt.Errorf("revoke: open %s: line %d is corrupt, refusing to start with fewer revocations", l.path, i+2)
		}
		l.journal++
		l.putLocked(r)
	}
	l.pruneLocked(now)
	return nil
}

// putLocked merges r into the records and reports whether it added
// coverage.
func (l *List) putLocked(r Record) bool {
	id := r.id()
	old, ok := l.recs[id]
	if ok && old.covers(r.Entry) {
		return false
	}
	if ok {
		r.Entry = old.merge(r.Entry)
		if r.Proof == "" {
			r.Proof = old.Proof
		}
	}
	l.recs[id] = r
	return true
}

// Add validates recs, adds those that revoke more than the list already
// does, persists them and returns them (for spreading). Invalid and
// expired records are skipped; the first reason is returned with what was
// added. On a write error nothing is added.
func (l *List) Add(recs ...Record) ([]Record, error) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var added []Record
	var firstErr error
	prev := make(map[string]*Record)
	for _, r := range recs {
		if err := r.Validate(now); err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		if r.Expired(now) {
			continue
		}
		id := r.id()
		if _, ok := l.recs[id]; !ok && len(l.recs) >= MaxEntries {
			firstErr = cmpErr(firstErr, fmt.Errorf("revoke: add: %d entries held, the limit", MaxEntries))
			continue
		}
		if _, seen := prev[id]; !seen {
			if old, ok := l.recs[id]; ok {
				prev[id] = &old
			} else {
				prev[id] = nil
			}
		}
		if l.putLocked(r) {
			added = append(added, l.recs[id])
		}
	}
	if len(added) == 0 {
		return nil, firstErr
	}
	if err := l.appendLocked(added); err != nil {
		for id, old := range prev {
			if old == nil {
				delete(l.recs, id)
			} else {
				l.recs[id] = *old
			}
		}
		return nil, fmt.Errorf("revoke: add: %w", err)
	}
	l.addToSnapshotLocked(added)
	return added, firstErr
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// addToSnapshotLocked publishes a snapshot with es added: into a copy of
// the small layer, or, when that grows past recentLimit, into a rebuilt
// base.
func (l *List) addToSnapshotLocked(recs []Record) {
	old := l.snap.Load()
	if old.recent.len()+len(recs) > recentLimit {
		l.rebuildLocked()
		return
	}
	recent := old.recent.clone()
	for _, r := range recs {
		recent.add(r.Entry)
	}
	l.snap.Store(&snapshot{base: old.base, recent: recent})
}

// rebuildLocked publishes a snapshot of every record in the base layer.
func (l *List) rebuildLocked() {
	base := newTables(len(l.recs))
	for _, r := range l.recs {
		base.add(r.Entry)
	}
	l.snap.Store(&snapshot{base: base, recent: newTables(0)})
}

// SessionRevoked reports whether session sid is revoked. It takes no lock.
func (l *List) SessionRevoked(sid string) bool {
	s := l.snap.Load()
	if _, ok := s.recent.sessions[sid]; ok {
		return true
	}
	_, ok := s.base.sessions[sid]
	return ok
}

// UserRevoked reports whether the authentication of user subject at
// authTime (Unix seconds) is revoked: authTime is at or before the
// entry's Before. It takes no lock.
func (l *List) UserRevoked(subject string, authTime int64) bool {
	s := l.snap.Load()
	if len(s.recent.users) > 0 {
		if before, ok := s.recent.users[subject]; ok && authTime <= before {
			return true
		}
	}
	before, ok := s.base.users[subject]
	return ok && authTime <= before
}

// ConnectorRevoked reports whether the connector with id, or with
// WireGuard key pub, is revoked. It takes no lock.
func (l *List) ConnectorRevoked(id string, pub wgkey.Public) bool {
	s := l.snap.Load()
	if len(s.recent.connectors)+len(s.base.connectors) == 0 {
		return false
	}
	key := KeyPrefix + pub.String()
	for _, t := range []*tables{s.recent, s.base} {
		if _, ok := t.connectors[id]; ok {
			return true
		}
		if _, ok := t.connectors[key]; ok {
			return true
		}
	}
	return false
}

// Records returns every record held, oldest first, for the gossip's full
// state exchange.
func (l *List) Records() []Record {
	l.mu.Lock()
	out := make([]Record, 0, len(l.recs))
	for _, r := range l.recs {
		out = append(out, r)
	}
	l.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Issued != out[j].Issued {
			return out[i].Issued < out[j].Issued
		}
		return out[i].id() < out[j].id()
	})
	return out
}

// Has reports whether the list already covers r: the gossip skips the
// verification of what it holds.
func (l *List) Has(r Record) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	old, ok := l.recs[r.id()]
	return ok && old.covers(r.Entry)
}

// Counts returns the number of entries by kind.
func (l *List) Counts() map[Kind]int {
	s := l.snap.Load()
	return map[Kind]int{
		KindSession:   len(s.base.sessions) + len(s.recent.sessions),
		KindUser:      len(s.base.users) + len(s.recent.users),
		KindConnector: len(s.base.connectors) + len(s.recent.connectors),
	}
}

// Prune drops expired entries and compacts the file when it holds many
// more lines than entries. It returns how many entries it dropped.
func (l *List) Prune() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.pruneLocked(l.now())
	if n > 0 {
		l.rebuildLocked()
	}
	if n > 0 || l.journal > 2*len(l.recs)+64 {
		if err := l.rewriteLocked(); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (l *List) pruneLocked(now time.Time) int {
	n := 0
	for id, r := range l.recs {
		if r.Expired(now) {
			delete(l.recs, id)
			n++
		}
	}
	return n
}

// appendLocked appends recs to the journal and syncs it.
func (l *List) appendLocked(recs []Record) error {
	var buf bytes.Buffer
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		_ = f.Close() // the error above is the one to report
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the error above is the one to report
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	l.journal += len(recs)
	return nil
}

// rewriteLocked writes the whole list atomically, mode 0600.
func (l *List) rewriteLocked() error {
	var buf bytes.Buffer
	h, _ := json.Marshal(fileHeader{Version: 1})
	buf.Write(h)
	buf.WriteByte('\n')
	for _, r := range l.recs {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if err := wgkey.WriteFileAtomic(l.path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	l.journal = len(l.recs)
	return nil
}
