package revoke

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/wgkey"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func open(tb testing.TB, path string, c *testkit.Clock) *List {
	tb.Helper()
	l, err := Open(path, c.Now)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

func rec(e Entry) Record { return Record{Entry: e} }

func TestValidate(t *testing.T) {
	key, _ := wgkey.Generate()
	good := []Entry{
		Session("sid-1", t0, 0),
		User("tid/oid", t0, t0, 0),
		Connector("web-01-abcdefgh", t0, 0),
		ConnectorKey(key.Public(), t0, 0),
	}
	for _, e := range good {
		if err := e.Validate(t0); err != nil {
			t.Errorf("%+v: %v", e, err)
		}
	}
	bad := map[string]Entry{
		"unknown kind":         {Kind: "app", Subject: "x", Issued: t0.Unix(), Until: t0.Unix() + 10},
		"empty subject":        {Kind: KindSession, Issued: t0.Unix(), Until: t0.Unix() + 10},
		"space in subject":     {Kind: KindSession, Subject: "a b", Issued: t0.Unix(), Until: t0.Unix() + 10},
		"control in subject":   {Kind: KindSession, Subject: "a\nb", Issued: t0.Unix(), Until: t0.Unix() + 10},
		"long subject":         {Kind: KindSession, Subject: strings.Repeat("a", MaxSubjectLen+1), Issued: t0.Unix(), Until: t0.Unix() + 10},
		"until before issued":  {Kind: KindSession, Subject: "s", Issued: t0.Unix(), Until: t0.Unix()},
		"no issued":            {Kind: KindSession, Subject: "s", Until: t0.Unix()},
		"span too long":        {Kind: KindSession, Subject: "s", Issued: t0.Unix(), Until: t0.Add(MaxSpan + time.Hour).Unix()},
		"issued in the future": {Kind: KindSession, Subject: "s", Issued: t0.Add(2 * time.Hour).Unix(), Until: t0.Add(3 * time.Hour).Unix()},
		"user without before":  {Kind: KindUser, Subject: "t/o", Issued: t0.Unix(), Until: t0.Unix() + 10},
		"session with before":  {Kind: KindSession, Subject: "s", Before: 5, Issued: t0.Unix(), Until: t0.Unix() + 10},
		"bad connector key":    {Kind: KindConnector, Subject: KeyPrefix + "nope", Issued: t0.Unix(), Until: t0.Unix() + 10},
	}
	for name, e := range bad {
		if err := e.Validate(t0); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestLookups(t *testing.T) {
	c := testkit.NewClock(t0)
	l := open(t, filepath.Join(t.TempDir(), "r.json"), c)
	key, _ := wgkey.Generate()
	other, _ := wgkey.Generate()
	added, err := l.Add(rec(Session("sid-1", t0, 0)), rec(User("tid/alice", t0, t0, 0)),
		rec(Connector("web-01", t0, 0)), rec(ConnectorKey(key.Public(), t0, 0)))
	if err != nil || len(added) != 4 {
		t.Fatalf("add: %d added, %v", len(added), err)
	}
	for _, tt := range []struct {
		name string
		got  bool
		want bool
	}{
		{"revoked session", l.SessionRevoked("sid-1"), true},
		{"other session", l.SessionRevoked("sid-2"), false},
		{"user authenticated before", l.UserRevoked("tid/alice", t0.Unix()-1), true},
		{"user authenticated in the revocation's second", l.UserRevoked("tid/alice", t0.Unix()), true},
		{"user authenticated a second after", l.UserRevoked("tid/alice", t0.Unix()+1), false},
		{"user authenticated after", l.UserRevoked("tid/alice", t0.Unix()+60), false},
		{"other user", l.UserRevoked("tid/bob", 0), false},
		{"connector by id", l.ConnectorRevoked("web-01", other.Public()), true},
		{"connector by key", l.ConnectorRevoked("web-02", key.Public()), true},
		{"other connector", l.ConnectorRevoked("web-02", other.Public()), false},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	// Adding what is covered adds nothing; a later before widens.
	if added, _ := l.Add(rec(Session("sid-1", t0, time.Hour))); len(added) != 0 {
		t.Errorf("a covered entry was added: %+v", added)
	}
	later := t0.Add(time.Hour)
	if added, _ := l.Add(rec(User("tid/alice", later, later, 0))); len(added) != 1 {
		t.Fatalf("a wider user entry was not added")
	}
	if !l.UserRevoked("tid/alice", t0.Unix()+60) {
		t.Error("the wider user entry does not refuse an authentication before it")
	}
	if got := l.Counts(); got[KindSession] != 1 || got[KindUser] != 1 || got[KindConnector] != 2 {
		t.Errorf("counts %v", got)
	}
}

func TestAddRefusesBadAndExpired(t *testing.T) {
	c := testkit.NewClock(t0)
	l := open(t, filepath.Join(t.TempDir(), "r.json"), c)
	expired := Session("old", t0.Add(-48*time.Hour), time.Hour)
	added, err := l.Add(rec(expired), rec(Entry{Kind: "nope"}), rec(Session("ok", t0, 0)))
	if len(added) != 1 || added[0].Subject != "ok" || err == nil {
		t.Fatalf("got %+v, %v; want only ok added and an error for the bad one", added, err)
	}
	if l.SessionRevoked("old") {
		t.Error("an expired entry was added")
	}
}

func TestPersistence(t *testing.T) {
	c := testkit.NewClock(t0)
	path := filepath.Join(t.TempDir(), "r.json")
	l := open(t, path, c)
	for i := range 3 {
		if _, err := l.Add(rec(Session(fmt.Sprintf("sid-%d", i), t0, time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Add(Record{Entry: User("tid/alice", t0, t0, 0), Proof: "jws"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	l2 := open(t, path, c)
	if !l2.SessionRevoked("sid-2") || !l2.UserRevoked("tid/alice", 0) {
		t.Fatal("a reopened list forgot entries")
	}
	if rs := l2.Records(); len(rs) != 4 || rs[3].Proof != "jws" && rs[0].Proof != "jws" {
		t.Errorf("records after reopen: %+v", rs)
	}
	// Entries expire and pruning compacts the file.
	c.Add(2 * time.Hour)
	n, err := l2.Prune()
	if err != nil || n != 3 {
		t.Fatalf("prune: %d, %v; want 3 dropped", n, err)
	}
	if l2.SessionRevoked("sid-0") {
		t.Error("an expired entry still refuses after prune")
	}
	l3 := open(t, path, c)
	if got := len(l3.Records()); got != 1 {
		t.Errorf("after prune and reopen: %d records, want 1", got)
	}
}

func TestCorruptFileRefusesToOpen(t *testing.T) {
	c := testkit.NewClock(t0)
	dir := t.TempDir()
	path := filepath.Join(dir, "r.json")
	l := open(t, path, c)
	l.Add(rec(Session("a", t0, 0)), rec(Session("b", t0, 0)))
	good, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(good), "\n")
	for name, content := range map[string]string{
		"empty":          "",
		"no header":      strings.Join(lines[1:], ""),
		"corrupt middle": lines[0] + "{not json\n" + strings.Join(lines[1:], ""),
		"invalid entry":  lines[0] + `{"k":"session","s":"x","i":5,"u":1}` + "\n",
	} {
		os.WriteFile(path, []byte(content), 0o600)
		if _, err := Open(path, c.Now); err == nil {
			t.Errorf("%s: opened a damaged file", name)
		}
	}
	// A torn final append (no newline) was never acknowledged: skipped.
	os.WriteFile(path, []byte(string(good)+`{"k":"sess`), 0o600)
	l2, err := Open(path, c.Now)
	if err != nil {
		t.Fatalf("torn final line: %v", err)
	}
	if !l2.SessionRevoked("a") || !l2.SessionRevoked("b") {
		t.Error("torn final line: earlier entries lost")
	}
}

func TestSnapshotFolds(t *testing.T) {
	c := testkit.NewClock(t0)
	l := open(t, filepath.Join(t.TempDir(), "r.json"), c)
	const n = 3*recentLimit + 7
	for i := range n {
		if _, err := l.Add(rec(Session(fmt.Sprintf("s%d", i), t0, 0))); err != nil {
			t.Fatal(err)
		}
	}
	s := l.snap.Load()
	if s.recent.len() > recentLimit {
		t.Errorf("recent layer holds %d, limit %d", s.recent.len(), recentLimit)
	}
	for i := range n {
		if !l.SessionRevoked(fmt.Sprintf("s%d", i)) {
			t.Fatalf("s%d not revoked", i)
		}
	}
}

func TestConcurrentAddAndLookup(t *testing.T) {
	c := testkit.NewClock(t0)
	l := open(t, filepath.Join(t.TempDir(), "r.json"), c)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 200 {
				l.Add(rec(Session(fmt.Sprintf("w%d-%d", w, i), t0, 0)))
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 2000 {
				l.SessionRevoked(fmt.Sprintf("w%d-%d", w, i%200))
				l.UserRevoked("x", 0)
			}
		}()
	}
	wg.Wait()
	if got := l.Counts()[KindSession]; got != 800 {
		t.Errorf("got %d sessions, want 800", got)
	}
}

// BenchmarkLookupMiss is the per-request cost of the deny-list at the
// edge: one session and one user lookup that both miss, with 100,000
// entries held.
func BenchmarkLookupMiss(b *testing.B) {
	c := testkit.NewClock(t0)
	l := open(b, filepath.Join(b.TempDir(), "r.json"), c)
	var recs []Record
	for i := range 100_000 {
		recs = append(recs, rec(Session(fmt.Sprintf("s%d", i), t0, 0)))
	}
	l.Add(recs...)
	l.Add(rec(User("tid/other", t0, t0, 0)))
	b.ReportAllocs()
	for b.Loop() {
		if l.SessionRevoked("sid-live") || l.UserRevoked("tid/alice", t0.Unix()) {
			b.Fatal("revoked")
		}
	}
}
