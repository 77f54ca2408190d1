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

// Source yields a catalogue's bytes: a file ([FileSource]), or an object
// of a remote store (awsapi.S3Source reads one from S3). Its methods must
// be safe for concurrent use.
type Source interface {
	// Fetch returns the content and its version (a hash, an ETag). When
	// since is not empty and the content is still at that version, it may
	// return (nil, since, nil) without reading it.
	Fetch(ctx context.Context, since string) (data []byte, version string, err error)
	// String names the source in logs.
	String() string
}

// FileSource reads the catalogue from a file; its version is the hash of
// the content.
type FileSource string

// Fetch reads the file.
func (f FileSource) Fetch(ctx context.Context, since string) ([]byte, string, error) {
	data, err := os.ReadFile(string(f))
	if err != nil {
		return nil, "", err
	}
	return data, hashOf(data), nil
}

// String returns the path.
func (f FileSource) String() string { return string(f) }

// Store holds the current catalogue of one source and replaces it when
// the source changes: it builds and validates a whole new [Catalog], then
// swaps it in atomically, and keeps the old one when the new content is
// invalid or cannot be read.
//
// Current is lock-free and safe to call on every request. A Store starts no
// goroutines of its own: run [Store.Watch] in a goroutine you own.
type Store struct {
	src    Source
	logger *slog.Logger
	cur    atomic.Pointer[Catalog]
	now    func() time.Time

	loadedAt atomic.Int64  // Unix nanoseconds when the catalogue in force was loaded
	failures atomic.Uint64 // failed reloads
	failing  atomic.Bool   // the latest reload failed

	mu      sync.Mutex // guards the following; also serialises reloads
	subs    []chan struct{}
	version string // of the source's content in force
}

// NewStore loads the catalogue at path; it fails when that first load fails.
// A nil logger discards logs.
func NewStore(path string, logger *slog.Logger) (*Store, error) {
	return NewStoreFrom(context.Background(), FileSource(path), logger)
}

// NewStoreFrom loads the catalogue from src; it fails when that first load
// fails. A nil logger discards logs.
func NewStoreFrom(ctx context.Context, src Source, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	data, version, err := src.Fetch(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("new catalog store: %s: %w", src, err)
	}
	c, err := Parse(src.String(), data)
	if err != nil {
		return nil, fmt.Errorf("new catalog store: %w", err)
	}
	s := &Store{src: src, logger: logger, version: version, now: time.Now}
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

// Reload reads the source again. When its content differs from the
// current catalogue's it builds a new catalogue and swaps it in, returning
// true. On any error the current catalogue stays in force and the error is
// returned; Reload does not log.
func (s *Store) Reload() (changed bool, err error) {
	return s.reload(context.Background())
}

// failed counts a failed reload: the source's content is not the
// catalogue in force.
func (s *Store) failed() {
	s.failures.Add(1)
	s.failing.Store(true)
}

func (s *Store) reload(ctx context.Context) (bool, error) {
	s.mu.Lock()
	since := s.version
	s.mu.Unlock()
	data, version, err := s.src.Fetch(ctx, since)
	if err != nil {
		s.failed()
		return false, fmt.Errorf("reload catalog: %s: %w", s.src, err)
	}
	if data == nil && version == since {
		s.failing.Store(false) // the source holds the catalogue in force
		return false, nil
	}
	return s.apply(data, version)
}

// apply swaps in the catalogue parsed from data (at version) unless it is
// the current one.
func (s *Store) apply(data []byte, version string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if hashOf(data) == s.cur.Load().Hash() {
		s.version = version
		s.failing.Store(false)
		return false, nil
	}
	c, err := Parse(s.src.String(), data)
	if err != nil {
		s.failed()
		return false, fmt.Errorf("reload catalog: %w", err)
	}
	s.cur.Store(c)
	s.loadedAt.Store(s.now().UnixNano())
	s.failing.Store(false)
	s.version = version
	for _, ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	return true, nil
}

// Watch polls the source every interval ([DefaultWatchInterval] when
// interval is zero or less) and reloads it when its content changes, so
// that editors that write a new file and rename it over the old one are
// seen too. It logs catalog_reloaded at Info on a swap and
// catalog_reload_failed at Error when a new content is invalid or the
// source cannot be read, once per distinct failure. Watch blocks until ctx
// ends.
func (s *Store) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastFailure string // the failure last logged: a read error, or the version of an invalid content
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lastFailure = s.poll(ctx, lastFailure)
	}
}

// poll reloads the source once and logs the outcome. It returns the
// failure to remember, so that a source that stays broken is logged only
// once.
func (s *Store) poll(ctx context.Context, lastFailure string) string {
	s.mu.Lock()
	since := s.version
	s.mu.Unlock()
	data, version, err := s.src.Fetch(ctx, since)
	if err != nil {
		if ctx.Err() != nil {
			return lastFailure
		}
		if msg := readFailure(err); msg != lastFailure {
			s.failed()
			s.logFailure(err)
			return msg
		}
		return lastFailure // the same failure, counted once
	}
	if data == nil && version == since {
		s.failing.Store(false)
		return "" // back at (or still at) the version in force
	}
	if version == lastFailure {
		return lastFailure // the same invalid content, logged already
	}
	changed, err := s.apply(data, version)
	if err != nil {
		s.logFailure(err)
		return version
	}
	if changed {
		c := s.Current()
		s.logger.Info("catalog_reloaded", "source", s.src.String(), "apps", len(c.apps), "hash", c.Hash())
	}
	return ""
}

// readFailure is how a read failure is remembered (an invalid content is
// remembered by its version).
func readFailure(err error) string { return "read: " + err.Error() }

func (s *Store) logFailure(err error) {
	s.logger.Error("catalog_reload_failed", "source", s.src.String(), "error", err.Error(), "kept_hash", s.Current().Hash())
}
