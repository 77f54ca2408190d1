package catalog

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultWatchInterval is how often [Store.Watch] polls the file when given
// an interval of zero or less.
const DefaultWatchInterval = 2 * time.Second

// Store holds the current catalogue of one file and replaces it when the
// file changes: it builds and validates a whole new [Catalog], then swaps it
// in atomically, and keeps the old one when the new file is invalid.
//
// Current is lock-free and safe to call on every request. A Store starts no
// goroutines of its own: run [Store.Watch] in a goroutine you own.
type Store struct {
	path   string
	logger *slog.Logger
	cur    atomic.Pointer[Catalog]
	now    func() time.Time

	loadedAt atomic.Int64  // Unix nanoseconds when the catalogue in force was loaded
	failures atomic.Uint64 // failed reloads
	failing  atomic.Bool   // the latest reload failed

	mu   sync.Mutex // guards the following; also serialises reloads
	subs []chan struct{}
}

// NewStore loads the catalogue at path; it fails when that first load fails.
// A nil logger discards logs.
func NewStore(path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c, err := Load(path)
	if err != nil {
		return nil, fmt.Errorf("new catalog store: %w", err)
	}
	s := &Store{path: path, logger: logger, now: time.Now}
	s.cur.Store(c)
	s.loadedAt.Store(s.now().UnixNano())
	return s, nil
}

// Stats is what a Store tells about its reloads, for metrics.
type Stats struct {
	// LoadedAt is when the catalogue in force was loaded.
	LoadedAt time.Time
	// Failures counts the reloads that failed (an unreadable or invalid
	// file) since the Store was made; Watch counts a file that stays
	// broken once, not once a poll.
	Failures uint64
	// Failing reports that the latest reload failed: the file holds
	// something other than the catalogue in force.
	Failing bool
}

// Stats returns the Store's reload statistics.
func (s *Store) Stats() Stats {
	return Stats{LoadedAt: time.Unix(0, s.loadedAt.Load()), Failures: s.failures.Load(), Failing: s.failing.Load()}
}

// Current returns the catalogue in force. It never returns nil.
func (s *Store) Current() *Catalog { return s.cur.Load() }

// Subscribe returns a channel that receives a value after each swap. The
// channel has a buffer of one and sends never block, so a slow reader sees
// several swaps as one; it should then read [Store.Current]. The channel is
// never closed.
func (s *Store) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs = append(s.subs, ch)
	s.mu.Unlock()
	return ch
}

// Reload reads the file again. When its content differs from the current
// catalogue's it builds a new catalogue and swaps it in, returning true. On
// any error the current catalogue stays in force and the error is returned;
// Reload does not log.
func (s *Store) Reload() (changed bool, err error) {
	data, err := os.ReadFile(s.path)
	if err != nil {
		s.failed()
		return false, fmt.Errorf("reload catalog: %w", err)
	}
	return s.apply(data)
}

func (s *Store) failed() {
	s.failures.Add(1)
	s.failing.Store(true)
}

// apply swaps in the catalogue parsed from data unless it is the current one.
func (s *Store) apply(data []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if hashOf(data) == s.cur.Load().Hash() {
		s.failing.Store(false)
		return false, nil
	}
	c, err := Parse(s.path, data)
	if err != nil {
		s.failed()
		return false, fmt.Errorf("reload catalog: %w", err)
	}
	s.cur.Store(c)
	s.loadedAt.Store(s.now().UnixNano())
	s.failing.Store(false)
	for _, ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	return true, nil
}

// Watch polls the file every interval ([DefaultWatchInterval] when interval
// is zero or less) and reloads it when its content changes, so that editors
// that write a new file and rename it over the old one are seen too. It logs
// catalog_reloaded at Info on a swap and catalog_reload_failed at Error when a
// new content is invalid or the file cannot be read, once per distinct
// failure. Watch blocks until ctx ends.
func (s *Store) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastFailure string // hash of the invalid content, or the read error, last logged
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lastFailure = s.poll(lastFailure)
	}
}

// poll reloads the file once and logs the outcome. It returns the failure
// to remember, so that a file that stays broken is logged only once.
func (s *Store) poll(lastFailure string) string {
	data, err := os.ReadFile(s.path)
	if err != nil {
		if msg := err.Error(); msg != lastFailure {
			s.failed()
			s.logFailure(err)
			return msg
		}
		return lastFailure // the same failure, counted once
	}
	h := hashOf(data)
	if h == lastFailure {
		return lastFailure // the same broken file, counted once
	}
	changed, err := s.apply(data)
	if err != nil {
		s.logFailure(err)
		return h
	}
	if changed {
		c := s.Current()
		s.logger.Info("catalog_reloaded", "path", s.path, "apps", len(c.apps), "hash", c.Hash())
	}
	return ""
}

func (s *Store) logFailure(err error) {
	s.logger.Error("catalog_reload_failed", "path", s.path, "error", err.Error(), "kept_hash", s.Current().Hash())
}
