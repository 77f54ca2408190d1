package session

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Cache remembers verified app tokens so that a mesh node pays for the
// signature check once per token, not once per request. It is keyed by the
// token string; an entry holds the claims and is used only for the same
// audience and only until the token's exp (plus skew), so a hit is a map
// lookup and a clock read, with no cryptography.
//
// The cache is bounded: it keeps two generations of at most size/2 entries
// each; when the current one fills, the previous one is dropped. Hits in
// the previous generation move to the current one. Failures are not
// cached. It is safe for concurrent use.
type Cache struct {
	v    *Verifier
	half int

	mu   sync.RWMutex // guards the following
	cur  map[string]*AppClaims
	prev map[string]*AppClaims
}

// NewCache returns a cache of at most size verified tokens in front of v;
// size < 2 means 2.
func NewCache(v *Verifier, size int) *Cache {
	half := max(size/2, 1)
	return &Cache{v: v, half: half, cur: make(map[string]*AppClaims, half)}
}

// App returns the claims of the app token for audience, verifying it with
// the Verifier on a miss. The returned claims are shared: callers must not
// modify them.
func (c *Cache) App(ctx context.Context, token, audience string) (*AppClaims, error) {
	c.mu.RLock()
	claims, ok := c.cur[token]
	inCur := ok
	if !ok {
		claims, ok = c.prev[token]
	}
	c.mu.RUnlock()
	if ok && claims.Audience == audience {
		if c.v.cfg.Now().Unix() >= claims.Expiry+int64(c.v.cfg.Skew/time.Second) {
			c.remove(token)
			return nil, fmt.Errorf("verify app token: %w", ErrExpired)
		}
		if !inCur {
			c.store(token, claims) // promote from the previous generation
		}
		return claims, nil
	}
	claims, err := c.v.VerifyApp(ctx, token, audience)
	if err != nil {
		return nil, err
	}
	c.store(token, claims)
	return claims, nil
}

// Len returns the number of cached tokens.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.cur) + len(c.prev)
}

func (c *Cache) store(token string, claims *AppClaims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur) >= c.half {
		c.prev, c.cur = c.cur, make(map[string]*AppClaims, c.half)
	}
	c.cur[token] = claims
}

func (c *Cache) remove(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cur, token)
	delete(c.prev, token)
}
