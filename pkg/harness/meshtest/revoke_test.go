package meshtest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/revoke"
)

// threeAuthNodes is a mesh of one node per region with sign-in on; the
// connector of group hq is in us-east-1.
var (
	threeAuthNodes = []harness.NodeSpec{{ID: "use1-a", Region: east}, {ID: "euw1-a", Region: west}, {ID: "apse1-a", Region: asia}}
	hqConnector    = []harness.ConnectorSpec{{Group: "hq", Region: east}}
)

// appStatus sends one browser request for /hello with cookie to node i and
// returns the status (200 served, 302 sent to sign in).
func appStatus(ctx context.Context, h *harness.Harness, i int, cookie *http.Cookie) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", h.AppURL(i, "/hello"), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "text/html")
	req.AddCookie(cookie)
	resp, err := h.MeshClient(i).Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// waitStatus waits until node i answers want for cookie.
func waitStatus(t testing.TB, h *harness.Harness, i int, cookie *http.Cookie, want int) time.Duration {
	t.Helper()
	start := time.Now()
	var got int
	err := harness.WaitFor(t.Context(), harness.Patience, func() bool {
		got, _ = appStatus(t.Context(), h, i, cookie)
		return got == want
	})
	if err != nil {
		t.Fatalf("%s: got %d, want %d", h.Meshes()[i].ID, got, want)
	}
	return time.Since(start)
}

// tokenClaims decodes the claims of an app cookie (no verification: the
// test only reads its own cookie).
func tokenClaims(t testing.TB, c *http.Cookie) (sub, sid string) {
	t.Helper()
	parts := strings.Split(c.Value, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var cl struct {
		Sub string `json:"sub"`
		Sid string `json:"sid"`
	}
	if err := json.Unmarshal(b, &cl); err != nil {
		t.Fatal(err)
	}
	return cl.Sub, cl.Sid
}

func appCookie(t testing.TB, h *harness.Harness, b *http.Client) *http.Cookie {
	t.Helper()
	u, _ := url.Parse(h.AppURL(0, "/"))
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == "__Host-postern" {
			return c
		}
	}
	return nil
}

// TestSignOutRevokesEverywhere signs out, then replays the old app cookie
// at every node of a three-region mesh: it is refused everywhere within
// seconds. A copy of the signed-out browser's global session in another
// browser gets no app in without a new sign-in at the provider, and the
// same browser signs in again without a redirect loop.
func TestSignOutRevokesEverywhere(t *testing.T) {
	h, _ := startMesh(t, threeAuthNodes, hqConnector, true)
	ctx := t.Context()
	a := h.Browser()
	if resp, body, err := harness.Navigate(ctx, a, h.AppURL(0, "/hello"), "alice", ""); err != nil || resp.StatusCode != 200 {
		t.Fatalf("sign in: %v %v %.200s", err, resp, body)
	}
	old := appCookie(t, h, a)
	_, oldSID := tokenClaims(t, old)
	authU, _ := url.Parse(h.AuthURL())
	b := h.Browser() // another browser holding a copy of the global session
	b.Jar.SetCookies(authU, a.Jar.Cookies(authU))
	for i := range h.Meshes() {
		waitStatus(t, h, i, old, http.StatusOK)
	}
	start := time.Now()
	resp, body, err := harness.Navigate(ctx, a, h.AppURL(0, "/.postern/logout"), "", "")
	if err != nil || resp.StatusCode != 200 || !strings.Contains(body, "Signed out") {
		t.Fatalf("sign out: %v %v %.300s", err, resp, body)
	}
	var mu sync.Mutex
	took := map[string]time.Duration{}
	var wg sync.WaitGroup
	for i, m := range h.Meshes() {
		wg.Go(func() {
			waitStatus(t, h, i, old, http.StatusFound)
			mu.Lock()
			took[m.ID] = time.Since(start)
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("the old app cookie is refused after the sign-out at: %v", took)
	// The other browser's copy of the global session mints app tokens of
	// the revoked session: they are refused, and the browser lands on the
	// provider's sign-in page, not in the app and not in a loop.
	resp, body, err = harness.Navigate(ctx, b, h.AppURL(1, "/hello"), "", "")
	if err != nil || resp.StatusCode != 200 || !strings.Contains(body, `<form method="post"`) || !strings.HasPrefix(resp.Request.URL.String(), h.IdPURL()) {
		t.Fatalf("copied global session: got %v at %v, want the provider's sign-in page; %.200s", err, resp.Request.URL, body)
	}
	if c := appCookie(t, h, b); c != nil {
		t.Fatalf("the copied global session got an app cookie")
	}
	// The signed-out browser signs in again: a fresh session, no loop
	// (Navigate fails after 20 redirects).
	resp, body, err = harness.Navigate(ctx, a, h.AppURL(0, "/hello"), "alice", "")
	if err != nil || resp.StatusCode != 200 || strings.TrimSpace(body) != "hello" {
		t.Fatalf("sign in again: %v %v %.200s", err, resp, body)
	}
	fresh := appCookie(t, h, a)
	if _, sid := tokenClaims(t, fresh); sid == oldSID {
		t.Fatal("the new sign-in kept the revoked session id")
	}
	for i := range h.Meshes() {
		waitStatus(t, h, i, fresh, http.StatusOK)
	}
}

// loadResult is one request of a user's load.
type loadResult struct {
	node   int
	user   string
	at     time.Time
	status int
}

// userLoad sends requests as each user to each node until stopped.
type userLoad struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	results []loadResult
}

func startUserLoad(h *harness.Harness, nodes []int, cookies map[string]*http.Cookie) *userLoad {
	l := &userLoad{stop: make(chan struct{})}
	for _, i := range nodes {
		for user, c := range cookies {
			l.wg.Go(func() {
				for {
					select {
					case <-l.stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), harness.Patience) // a hang guard: slow is no failure
					st, err := appStatus(ctx, h, i, c)
					cancel()
					if err != nil {
						st = -1
					}
					l.mu.Lock()
					l.results = append(l.results, loadResult{i, user, time.Now(), st})
					l.mu.Unlock()
				}
			})
		}
	}
	return l
}

func (l *userLoad) finish() []loadResult {
	close(l.stop)
	l.wg.Wait()
	return l.results
}

// statuses counts the statuses of user's results at node i after since
// (-1: the request failed).
func (l *userLoad) statuses(user string, i int, since time.Time) map[int]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := map[int]int{}
	for _, r := range l.results {
		if r.user == user && r.node == i && r.at.After(since) {
			m[r.status]++
		}
	}
	return m
}

// count returns how many results of user at node i match.
func (l *userLoad) count(user string, i int, match func(loadResult) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.results {
		if r.user == user && r.node == i && match(r) {
			n++
		}
	}
	return n
}

// TestRevokeUserUnderLoad revokes a user with the admin command's signed
// revocation at one node while two users load every node: the revoked
// user's requests fail at every node within seconds and never succeed
// again; the other user's never fail. The revocation reaches a node that
// was down during it, and survives a restart of the whole mesh.
func TestRevokeUserUnderLoad(t *testing.T) {
	h, _ := startMesh(t, threeAuthNodes, hqConnector, true)
	ctx := t.Context()
	cookies := map[string]*http.Cookie{}
	for _, user := range []string{"alice", "bob"} {
		c, err := h.SignIn(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		cookies[user] = c
		for i := range h.Meshes() {
			waitStatus(t, h, i, c, http.StatusOK)
		}
	}
	aliceSub, _ := tokenClaims(t, cookies["alice"])
	h.KillMesh(2) // down during the revocation
	l := startUserLoad(h, []int{0, 1}, cookies)
	if err := harness.WaitFor(ctx, harness.Patience, func() bool {
		return l.count("bob", 0, func(r loadResult) bool { return r.status == 200 }) > 20 &&
			l.count("alice", 1, func(r loadResult) bool { return r.status == 200 }) > 20
	}); err != nil {
		t.Fatal("the load does not get through")
	}
	now := time.Now()
	proof, err := h.Authority.SignRevocation(revoke.User(aliceSub, now, now, 0))
	if err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	resp, err := (&enroll.Client{BaseURL: h.Meshes()[1].URL, HTTPClient: h.APIClient()}).Revoke(ctx, proof)
	if err != nil || resp.Subject != aliceSub {
		t.Fatalf("revoke: %+v, %v", resp, err)
	}
	for _, i := range []int{0, 1} {
		if err := harness.WaitFor(ctx, harness.Patience, func() bool {
			return l.count("alice", i, func(r loadResult) bool { return r.at.After(revoked) && r.status == http.StatusFound }) > 10
		}); err != nil {
			t.Fatalf("%s keeps serving the revoked user: statuses since the revocation %v", h.Meshes()[i].ID, l.statuses("alice", i, revoked))
		}
	}
	rs := l.finish()
	for _, i := range []int{0, 1} {
		var lastOK time.Time
		for _, r := range rs {
			switch {
			case r.user == "bob" && r.node == i && r.status != 200:
				t.Errorf("%s: bob's request failed with %d", h.Meshes()[i].ID, r.status)
			case r.user == "alice" && r.node == i && r.status == 200 && r.at.After(lastOK):
				lastOK = r.at
			}
		}
		t.Logf("%s serves the revoked user for the last time %v after the revocation", h.Meshes()[i].ID, lastOK.Sub(revoked).Round(time.Millisecond))
	}
	// The node that was down learns it when it comes back.
	if err := h.StartMesh(2); err != nil {
		t.Fatal(err)
	}
	waitTunnels(t, h)
	waitStatus(t, h, 2, cookies["alice"], http.StatusFound)
	waitStatus(t, h, 2, cookies["bob"], http.StatusOK)
	// The whole mesh restarts: node 0 alone, with no peer to learn from,
	// still refuses the user (the revocation is persisted).
	for i := range h.Meshes() {
		h.KillMesh(i)
	}
	if err := h.StartMesh(0); err != nil {
		t.Fatal(err)
	}
	if st, err := appStatus(ctx, h, 0, cookies["alice"]); err != nil || st != http.StatusFound {
		t.Fatalf("after a restart alone: got %d, %v; want 302", st, err)
	}
	if slices.Contains(h.Running(), 1) {
		t.Fatal("node 1 is running: the check above proves nothing")
	}
}
