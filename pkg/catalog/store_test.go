package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/pkg/testkit"
)

// catalogWithApps returns a valid catalogue with n apps named app0...
func catalogWithApps(n int) string {
	var sb strings.Builder
	sb.WriteString("connector_groups:\n  - id: hq\napps:\n")
	for i := range n {
		fmt.Fprintf(&sb, "  - id: app%d\n    host: app%d.example.com\n    internal_url: http://10.0.0.1\n    connector_group: hq\n    preauth: passthrough\n", i, i)
	}
	return sb.String()
}

// replaceFile writes content next to path and renames it over path, as
// editors and config management do.
func replaceFile(tb testing.TB, path, content string) {
	tb.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func newTestStore(tb testing.TB, content string) (*Store, string, *testkit.SyncBuffer) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "catalog.yaml")
	writeFile(tb, path, content)
	logs := &testkit.SyncBuffer{}
	s, err := NewStore(path, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	return s, path, logs
}

func TestNewStoreFails(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "apps: 1\n")
	tests := []struct {
		name    string
		path    string
		invalid bool
	}{
		{"missing file", filepath.Join(dir, "nope.yaml"), false},
		{"invalid file", bad, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewStore(tt.path, nil)
			if err == nil || s != nil {
				t.Fatalf("got %v, %v, want an error", s, err)
			}
			if got := errors.Is(err, ErrInvalid); got != tt.invalid {
				t.Errorf("got errors.Is(ErrInvalid) %v, want %v: %v", got, tt.invalid, err)
			}
		})
	}
}

func TestStoreReload(t *testing.T) {
	s, path, _ := newTestStore(t, catalogWithApps(1))
	sub := s.Subscribe()
	first := s.Current()

	if changed, err := s.Reload(); changed || err != nil {
		t.Fatalf("unchanged file: got %v, %v, want false, nil", changed, err)
	}

	writeFile(t, path, catalogWithApps(2))
	if changed, err := s.Reload(); !changed || err != nil {
		t.Fatalf("good file: got %v, %v, want true, nil", changed, err)
	}
	second := s.Current()
	if second == first || len(second.Apps()) != 2 {
		t.Fatalf("got %d apps, want 2 after a swap", len(second.Apps()))
	}
	select {
	case <-sub:
	default:
		t.Fatal("got no change notification, want one")
	}
	if len(first.Apps()) != 1 {
		t.Errorf("got the old catalogue changed (%d apps), want it untouched", len(first.Apps()))
	}

	writeFile(t, path, catalogWithApps(1)+"    backend_timeout: never\n")
	changed, err := s.Reload()
	if changed || err == nil {
		t.Fatalf("bad file: got %v, %v, want false and an error", changed, err)
	}
	if want := path + ":9:"; !strings.Contains(err.Error(), want) || !errors.Is(err, ErrInvalid) {
		t.Errorf("got %v, want an ErrInvalid mentioning %q", err, want)
	}
	if s.Current() != second {
		t.Error("got the catalogue replaced by a bad file, want the old one kept")
	}
	select {
	case <-sub:
		t.Error("got a change notification for a failed reload, want none")
	default:
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reload(); err == nil || s.Current() != second {
		t.Errorf("missing file: got %v, want an error and the old catalogue kept", err)
	}
}

func TestStoreWatch(t *testing.T) {
	s, path, logs := newTestStore(t, catalogWithApps(1))
	sub := s.Subscribe()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, 10*time.Millisecond)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	replaceFile(t, path, catalogWithApps(2))
	testkit.WaitFor(t, 10*time.Second, "the 2-app catalogue", func() bool { return len(s.Current().Apps()) == 2 })
	select {
	case <-sub:
	case <-time.After(5 * time.Second):
		t.Fatal("got no change notification, want one")
	}

	// A bad file is logged once however many times it is polled, and kept out.
	good := s.Current()
	replaceFile(t, path, catalogWithApps(3)+"    tls_skip_verify: maybe\n")
	testkit.WaitFor(t, 10*time.Second, "catalog_reload_failed", func() bool { return strings.Contains(logs.String(), "catalog_reload_failed") })
	if s.Current() != good {
		t.Fatal("got a bad file swapped in, want the old catalogue kept")
	}
	// Let the watcher poll the same bad file many more times: it must not
	// log it again. (This asserts that nothing happens over a span of time,
	// so it waits for the span itself.)
	time.Sleep(20 * 10 * time.Millisecond)
	if n := strings.Count(logs.String(), "catalog_reload_failed"); n != 1 {
		t.Errorf("got %d catalog_reload_failed lines for one bad file, want 1:\n%s", n, logs.String())
	}

	// In-place writes are picked up too. (A poll may catch the file half
	// written and log that once; what counts is that the full file wins.)
	writeFile(t, path, catalogWithApps(3))
	testkit.WaitFor(t, 10*time.Second, "the 3-app catalogue", func() bool { return len(s.Current().Apps()) == 3 })

	out := logs.String()
	for _, want := range []string{`"msg":"catalog_reloaded"`, `"apps":3`, `"hash":"` + s.Current().Hash(), `"kept_hash":"` + good.Hash(), `catalog.yaml:19:`} {
		if !strings.Contains(out, want) {
			t.Errorf("got logs without %s:\n%s", want, out)
		}
	}

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("got Watch still running after cancel, want it returned")
	}
}

// TestStoreConcurrentReads reloads while readers use the current catalogue;
// run with -race.
func TestStoreConcurrentReads(t *testing.T) {
	s, path, _ := newTestStore(t, catalogWithApps(1))
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				c := s.Current()
				n := len(c.Apps())
				for i := range n {
					if a, ok := c.AppByHost(fmt.Sprintf("APP%d.example.com", i)); !ok || a.ID != fmt.Sprintf("app%d", i) {
						t.Errorf("got %v, %v for app%d in a %d-app catalogue, want it found", a, ok, i, n)
						return
					}
				}
				if _, ok := c.App(fmt.Sprintf("app%d", n)); ok {
					t.Errorf("got app%d in a %d-app catalogue, want a consistent catalogue", n, n)
					return
				}
			}
		})
	}
	for i := range 50 {
		content := catalogWithApps(1 + i%5)
		if i%7 == 3 {
			content += "  - bad\n"
		}
		replaceFile(t, path, content)
		_, _ = s.Reload()
	}
	cancel()
	wg.Wait()
	if got := len(s.Current().Apps()); got != 5 {
		t.Errorf("got %d apps, want 5 from the last good file", got)
	}
}

func TestStoreStats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	writeFile(t, path, catalogWithApps(1))
	s, err := NewStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	first := s.Stats()
	if first.Failures != 0 || first.Failing || first.LoadedAt.IsZero() {
		t.Fatalf("fresh store stats %+v", first)
	}
	replaceFile(t, path, "apps: [")
	if _, err := s.Reload(); err == nil {
		t.Fatal("a broken file reloaded")
	}
	if st := s.Stats(); st.Failures != 1 || !st.Failing || !st.LoadedAt.Equal(first.LoadedAt) {
		t.Fatalf("after a failure: %+v", st)
	}
	replaceFile(t, path, catalogWithApps(2))
	if _, err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Failures != 1 || st.Failing || !st.LoadedAt.Equal(clock) {
		t.Fatalf("after a good reload: %+v, want loaded at %v", st, clock)
	}
	// Watch's polls count a file that stays broken once, and a missing
	// file once, however often they look.
	replaceFile(t, path, "apps: [")
	last := ""
	for range 3 {
		last = s.poll(t.Context(), last)
	}
	if st := s.Stats(); st.Failures != 2 || !st.Failing {
		t.Fatalf("after three polls of one broken file: %+v, want 2 failures, failing", st)
	}
	os.Remove(path)
	for range 3 {
		last = s.poll(t.Context(), last)
	}
	if st := s.Stats(); st.Failures != 3 || !st.Failing || !st.LoadedAt.Equal(clock) {
		t.Fatalf("after three polls of a missing file: %+v, want 3 failures", st)
	}
}
