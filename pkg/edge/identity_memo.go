package edge

import (
	"context"
	"sync"
	"time"
)

// Identity blocks a connector said it holds are sent by reference for
// memoFor after it said so, then once in full again: less than the
// connector's own idle time, so a reference rarely misses; one that does
// costs a second trip through the tunnel, not an error. A path remembers
// at most memoBlocks blocks; past that it starts again from none.
const (
	memoFor    = 5 * time.Minute
	memoBlocks = 4096
)

// identityMemo remembers, per connector instance, the digests of the
// identity blocks it holds. It is safe for concurrent use.
type identityMemo struct {
	now func() time.Time

	mu    sync.Mutex                    // guards paths
	paths map[Path]map[string]time.Time // digest -> sent by reference until
}

func newIdentityMemo(now func() time.Time) *identityMemo {
	return &identityMemo{now: now, paths: map[Path]map[string]time.Time{}}
}

// held reports whether p held digest when last heard of.
func (m *identityMemo) held(p Path, digest string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	until, ok := m.paths[p][digest]
	return ok && m.now().Before(until)
}

// hold records that p holds digest now.
func (m *identityMemo) hold(p Path, digest string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.paths[p]
	if d == nil || len(d) >= memoBlocks {
		if d == nil {
			// The instance's blocks go with it.
			context.AfterFunc(p.Lost(), func() { m.drop(p) })
		}
		d = make(map[string]time.Time)
		m.paths[p] = d
	}
	d[digest] = m.now().Add(memoFor)
}

// forget records that p does not hold digest.
func (m *identityMemo) forget(p Path, digest string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.paths[p], digest)
}

func (m *identityMemo) drop(p Path) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.paths, p)
}

// identityForm is how an attempt carries its identity block.
type identityForm int

const (
	identityPlain identityForm = iota // headers only: no block, or a relay path
	identityFull                      // headers and HeaderIdentity with the names
	identityRef                       // HeaderIdentity with the digest alone
)
