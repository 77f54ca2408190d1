package bearer

import (
	"sync"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/session"
)

// cache remembers verified tokens, like session.Cache does app cookies: a
// hit is a map lookup under a read lock, with no cryptography. An entry is
// used only for the catalogue entry (the *catalog.App) it was verified
// for, so a catalogue reload, which builds new entries, drops every
// acceptance it changed. It keeps two generations of at most size/2
// entries; when the current one fills, the previous one is dropped.
// Failures are not cached.
type cache struct {
	half int

	mu   sync.RWMutex // guards the following
	cur  map[string]entry
	prev map[string]entry
}

type entry struct {
	app *catalog.App
	id  *session.Identity
	exp int64
}

func newCache(size int) *cache {
	half := max(size/2, 1)
	return &cache{half: half, cur: make(map[string]entry, half)}
}

// get returns the identity and exp of token verified for app.
func (c *cache) get(token string, app *catalog.App) (*session.Identity, int64, bool) {
	c.mu.RLock()
	e, ok := c.cur[token]
	inCur := ok
	if !ok {
		e, ok = c.prev[token]
	}
	c.mu.RUnlock()
	if !ok || e.app != app {
		return nil, 0, false
	}
	if !inCur {
		c.put(token, e.app, e.id, e.exp) // promote from the previous generation
	}
	return e.id, e.exp, true
}

func (c *cache) put(token string, app *catalog.App, id *session.Identity, exp int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur) >= c.half {
		c.prev, c.cur = c.cur, make(map[string]entry, c.half)
	}
	c.cur[token] = entry{app: app, id: id, exp: exp}
}

func (c *cache) remove(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cur, token)
	delete(c.prev, token)
}

// Len returns the number of verified tokens remembered.
func (v *Verifier) Len() int {
	v.cache.mu.RLock()
	defer v.cache.mu.RUnlock()
	return len(v.cache.cur) + len(v.cache.prev)
}
