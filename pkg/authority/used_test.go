package authority

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/pkg/testkit"
)

func openUsed(tb testing.TB, path string, c *testkit.Clock) *UsedTokens {
	tb.Helper()
	u, err := OpenUsedTokens(path, c.Now, false)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

func TestUsedTokensPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "used.json")
	c := testkit.NewClock(t0)
	u := openUsed(t, path, c)
	exp := t0.Add(time.Hour)
	if first, err := u.MarkUsed("a", exp); err != nil || !first {
		t.Fatalf("first mark: got %v %v, want true <nil>", first, err)
	}
	if first, err := u.MarkUsed("a", exp); err != nil || first {
		t.Fatalf("second mark: got %v %v, want false <nil>", first, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("mode: got %v, want 0600", got)
	}
	u2 := openUsed(t, path, c)
	if !u2.Has("a") {
		t.Fatal("used id forgotten across reopen")
	}
	if first, _ := u2.MarkUsed("a", exp); first {
		t.Fatal("used id reusable after reopen")
	}
	if u2.Has("b") {
		t.Fatal("unknown id reported used")
	}
}

func TestUsedTokensPrune(t *testing.T) {
	path := filepath.Join(t.TempDir(), "used.json")
	c := testkit.NewClock(t0)
	u := openUsed(t, path, c)
	if _, err := u.MarkUsed("old", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	c.Set(t0.Add(time.Minute + UsedRetention - time.Second))
	if !u.Has("old") {
		t.Fatal("id pruned within retention")
	}
	c.Set(t0.Add(time.Minute + UsedRetention + time.Second))
	if _, err := u.MarkUsed("new", c.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if u.Has("old") {
		t.Fatal("expired id kept")
	}
	if got := openUsed(t, path, c).List(); len(got) != 1 || got[0].ID != "new" {
		t.Fatalf("got %v, want only new", got)
	}
}

func TestUsedTokensConcurrent(t *testing.T) {
	u := openUsed(t, filepath.Join(t.TempDir(), "used.json"), testkit.NewClock(t0))
	const n = 8
	var wg sync.WaitGroup
	wins := make(chan bool, n)
	for range n {
		wg.Go(func() {
			first, err := u.MarkUsed("same", t0.Add(time.Hour))
			if err != nil {
				t.Error(err)
			}
			wins <- first
		})
	}
	wg.Wait()
	close(wins)
	count := 0
	for w := range wins {
		if w {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("got %d winners, want 1", count)
	}
}

func TestUsedTokensMerge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "used.json")
	c := testkit.NewClock(t0)
	u := openUsed(t, path, c)
	err := u.Merge([]UsedToken{
		{ID: "x", Expires: t0.Add(time.Hour)},
		{ID: "stale", Expires: t0.Add(-time.Hour)},
		{ID: "", Expires: t0.Add(time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	u2 := openUsed(t, path, c)
	if !u2.Has("x") || u2.Has("stale") {
		t.Fatalf("got %v, want only x", u2.List())
	}
	if first, _ := u2.MarkUsed("x", t0.Add(time.Hour)); first {
		t.Fatal("merged id reusable")
	}
}

func TestUsedTokensBadFile(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.json")
	if err := os.WriteFile(corrupt, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenUsedTokens(corrupt, nil, false); err == nil {
		t.Fatal("corrupt file opened as an empty set")
	}
	if _, err := OpenUsedTokens("", nil, false); err == nil {
		t.Fatal("empty path accepted")
	}
	// A write failure leaves the id unburnt.
	blocked := filepath.Join(dir, "blocked")
	u := openUsed(t, filepath.Join(blocked, "used.json"), testkit.NewClock(t0))
	os.RemoveAll(blocked)
	if err := os.WriteFile(blocked, nil, 0o600); err != nil { // a file where the directory should be
		t.Fatal(err)
	}
	if first, err := u.MarkUsed("a", t0.Add(time.Hour)); err == nil || first {
		t.Fatalf("got %v %v, want false and an error", first, err)
	}
	if u.Has("a") {
		t.Fatal("id burnt although the write failed")
	}
}

func TestUsedTokensLostRefusesUntilRestored(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "used.json")
	c := testkit.NewClock(t0)
	// A fresh node writes the file at once, so that its loss shows.
	fresh := openUsed(t, path, c)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a fresh set did not write its file: %v", err)
	}
	fresh.MarkUsed("a", t0.Add(time.Hour))
	os.Remove(path)
	lost, err := OpenUsedTokens(path, c.Now, true)
	if err != nil {
		t.Fatal(err)
	}
	if lost.Restored() {
		t.Fatal("a lost set reports itself restored")
	}
	if first, err := lost.MarkUsed("a", t0.Add(time.Hour)); first || !errors.Is(err, ErrUsedUnrestored) {
		t.Fatalf("a lost set burnt a token: first %v, err %v", first, err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("an unrestored set wrote its file before it was restored")
	}
	if err := lost.Merge([]UsedToken{{ID: "a", Expires: t0.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if err := lost.Restore(); err != nil {
		t.Fatal(err)
	}
	if first, err := lost.MarkUsed("a", t0.Add(time.Hour)); first || err != nil {
		t.Fatalf("restored set accepted a used token: %v %v", first, err)
	}
	if first, err := lost.MarkUsed("b", t0.Add(time.Hour)); !first || err != nil {
		t.Fatalf("restored set refused a new token: %v %v", first, err)
	}
	if again := openUsed(t, path, c); !again.Has("a") || !again.Has("b") {
		t.Fatal("the restored set was not written")
	}
}

func TestUsedTokensGrants(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "used.json")
	c := testkit.NewClock(t0)
	u := openUsed(t, path, c)
	iat, exp := t0.Add(-time.Minute), t0.Add(time.Hour)
	if ok, err := u.Grant("a", "r1", iat, exp); !ok || err != nil {
		t.Fatalf("first grant: %v %v", ok, err)
	}
	if ok, err := u.Grant("a", "r1", iat, exp); !ok || err != nil {
		t.Fatalf("the same redemption again: %v %v", ok, err)
	}
	if ok, err := u.Grant("a", "r2", iat, exp); ok || err != nil {
		t.Fatalf("another redemption of the same token: %v %v", ok, err)
	}
	if u.Has("a") {
		t.Fatal("a vote marked the token used")
	}
	// Votes survive a restart.
	if ok, _ := openUsed(t, path, c).Grant("a", "r2", iat, exp); ok {
		t.Fatal("a vote was forgotten across a restart")
	}
	// A lost record abstains for tokens issued before the loss, also
	// after it is restored and reopened.
	os.Remove(path)
	lost, err := OpenUsedTokens(path, c.Now, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lost.Grant("b", "r", iat, exp); !errors.Is(err, ErrUsedUnrestored) {
		t.Fatalf("unrestored: got %v", err)
	}
	lost.Restore()
	c.Set(t0.Add(time.Minute))
	again := openUsed(t, path, c)
	if _, err := again.Grant("a", "r3", iat, exp); !errors.Is(err, ErrAbstain) {
		t.Fatalf("a token issued before the loss: got %v, want %v", err, ErrAbstain)
	}
	if ok, err := again.Grant("c", "r", t0.Add(time.Second), exp); !ok || err != nil {
		t.Fatalf("a token issued after the loss: %v %v", ok, err)
	}
	c.Set(t0.Add(MaxEnrollTTL + UsedRetention + time.Hour))
	if ok, err := again.Grant("d", "r", iat, c.Now().Add(time.Hour)); !ok || err != nil {
		t.Fatalf("after every token of before the loss expired: %v %v", ok, err)
	}
}

// TestUsedTokensWinner: the redemption that burnt a token is kept with
// it, learnt later for an id held without one, never replaced, persisted,
// and bounded in length.
func TestUsedTokensWinner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "used.json")
	c := testkit.NewClock(t0)
	u := openUsed(t, path, c)
	exp := t0.Add(time.Hour)
	if err := u.Merge([]UsedToken{{ID: "a", Expires: exp}, {ID: "b", Expires: exp, RID: "rb"}}); err != nil {
		t.Fatal(err)
	}
	if rid, used := u.RedeemedBy("a"); !used || rid != "" {
		t.Fatalf("a: got %q %v, want used with no known redemption", rid, used)
	}
	if err := u.Merge([]UsedToken{{ID: "a", Expires: exp, RID: "ra"}, {ID: "b", Expires: exp, RID: "other"},
		{ID: "c", Expires: exp, RID: string(make([]byte, maxRIDLen+1))}}); err != nil {
		t.Fatal(err)
	}
	u2 := openUsed(t, path, c)
	for _, tt := range []struct {
		id, rid string
		used    bool
	}{{"a", "ra", true}, {"b", "rb", true}, {"c", "", false}, {"d", "", false}} {
		if rid, used := u2.RedeemedBy(tt.id); rid != tt.rid || used != tt.used {
			t.Errorf("%s after reopening: got %q %v, want %q %v", tt.id, rid, used, tt.rid, tt.used)
		}
	}
	c.Set(exp.Add(UsedRetention + time.Second))
	u2.List() // prunes
	if _, used := u2.RedeemedBy("a"); used {
		t.Error("an expired id is still held")
	}
}
