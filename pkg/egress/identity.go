package egress

import (
	"container/list"
	"net/http"
	"sync"
	"time"

	"github.com/postern/postern/pkg/tunnelhttp"
)

// Identity blocks held for references (see tunnelhttp.HeaderIdentity):
// at most identityBytes of names and values, each dropped after
// identityIdle without use. 8 MiB holds about 5,000 callers × apps with
// the default headers; past that the least recently used go, and a
// reference to one costs the mesh one extra trip through the tunnel.
const (
	identityBytes = 8 << 20
	identityIdle  = 10 * time.Minute
	blockOverhead = 128 // map entry, list element, slices
)

// identityStore holds the identity blocks the mesh sent in full, by
// digest, least recently used first out. It is safe for concurrent use.
type identityStore struct {
	max  int
	idle time.Duration
	now  func() time.Time

	mu    sync.Mutex // guards the following
	byKey map[string]*list.Element
	lru   list.List // of *identityBlock, most recently used at the front
	size  int
}

type identityBlock struct {
	digest, app   string
	names, values []string
	size          int
	used          time.Time
}

func newIdentityStore(maxBytes int, idle time.Duration, now func() time.Time) *identityStore {
	return &identityStore{max: maxBytes, idle: idle, now: now, byKey: map[string]*list.Element{}}
}

// put holds a block, replacing nothing: a digest names one block.
func (s *identityStore) put(digest, app string, names, values []string) {
	b := &identityBlock{digest: digest, app: app, names: names, values: values, size: blockOverhead + len(digest) + len(app)}
	for i := range names {
		b.size += len(names[i]) + len(values[i])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b.used = s.now()
	if e, ok := s.byKey[digest]; ok {
		e.Value.(*identityBlock).used = b.used
		s.lru.MoveToFront(e)
		return
	}
	s.byKey[digest] = s.lru.PushFront(b)
	s.size += b.size
	s.evictLocked(b.used)
}

// get returns the block held for digest and app, refreshing its use; nil
// when none is (never sent, dropped, or another app's).
func (s *identityStore) get(digest, app string) *identityBlock {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.evictLocked(now)
	e, ok := s.byKey[digest]
	if !ok {
		return nil
	}
	b := e.Value.(*identityBlock)
	if b.app != app {
		return nil
	}
	b.used = now
	s.lru.MoveToFront(e)
	return b
}

// evictLocked drops the blocks past the size bound, and those idle too
// long, least recently used first.
func (s *identityStore) evictLocked(now time.Time) {
	for e := s.lru.Back(); e != nil; e = s.lru.Back() {
		b := e.Value.(*identityBlock)
		if s.size <= s.max && now.Sub(b.used) < s.idle {
			return
		}
		s.lru.Remove(e)
		delete(s.byKey, b.digest)
		s.size -= b.size
	}
}

// stats returns the number of blocks held and their size.
func (s *identityStore) stats() (blocks, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len(), s.size
}

// identityResult is what takeIdentity did with a request's identity.
type identityResult int

const (
	identityNone     identityResult = iota // no HeaderIdentity: headers as they came
	identityHeld                           // sent in full and now held
	identityRefused                        // sent in full but not held (malformed)
	identityExpanded                       // a reference, expanded from the store
	identityUnknown                        // a reference to a block not held
)

// takeIdentity handles r's HeaderIdentity: a block sent in full is held
// (when well-formed) and w's answer says so; a reference is replaced by
// the headers of the block it names. HeaderIdentity itself never reaches
// the backend (rewrite strips every Postern- header).
func (h *Handler) takeIdentity(w http.ResponseWriter, r *http.Request) (identityResult, error) {
	v := r.Header.Get(tunnelhttp.HeaderIdentity)
	if v == "" {
		return identityNone, nil
	}
	app := r.Header.Get(tunnelhttp.HeaderApp)
	digest, names, err := tunnelhttp.ParseIdentity(v)
	if err != nil {
		return identityRefused, err
	}
	if len(names) == 0 {
		b := h.identities.get(digest, app)
		if b == nil {
			return identityUnknown, nil
		}
		for i, n := range b.names {
			r.Header[n] = b.values[i : i+1 : i+1]
		}
		return identityExpanded, nil
	}
	values, err := tunnelhttp.IdentityValues(r.Header, app, digest, names)
	if err != nil {
		return identityRefused, err
	}
	h.identities.put(digest, app, names, values)
	w.Header().Set(tunnelhttp.HeaderIdentity, digest)
	return identityHeld, nil
}
