package harness

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/postern/postern/pkg/harness/browsertest"
)

// TestBrowserSignIn drives a real headless Chromium: app URL → sign-in at
// the development provider → the app shows the identity headers it got →
// a path rule denies → logout → the sign-in page again.
func TestBrowserSignIn(t *testing.T) {
	h := start(t, Options{Auth: true})
	ctx := newBrowser(t, h)

	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("%s: %v\npage: %s", name, err, body)
		}
	}
	text := func() string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		if err != nil {
			t.Fatalf("read page: %v", err)
		}
		return s
	}
	location := func() string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatalf("read location: %v", err)
		}
		return s
	}
	alice := chromedp.CSS(`button[data-user="alice"]`)
	step("open the app", chromedp.Navigate(h.AppURL(0, "/")), chromedp.WaitVisible(alice))
	// The provider's page counts groups in the singular and says what
	// "can satisfy" means.
	if page := text(); !strings.Contains(page, "· 1 group") || strings.Contains(page, "1 groups") ||
		!strings.Contains(page, "can satisfy: c1 means") {
		t.Fatalf("sign-in page: want \"1 group\" and the legend of \"can satisfy\", got\n%s", page)
	}
	step("sign in as alice", chromedp.Click(alice), chromedp.WaitVisible(chromedp.CSS("body")))
	waitForText(t, ctx, "X-Postern-User")
	page, loc := text(), location()
	if !strings.HasPrefix(loc, h.AppURL(0, "/")) || !strings.Contains(page, "SmartMoney") || !strings.Contains(page, "Alice") {
		t.Fatalf("after sign-in at %s the app page lacks the identity headers:\n%s", loc, page)
	}
	screenshot(t, ctx, "signed-in")
	// The identity table wraps long values (the assertion) and keeps every
	// header name on one line, inside the window.
	layout, err := chromedp.Run(ctx, chromedp.Evaluate[string](identityLayoutJS))
	if err != nil || layout != "ok" {
		t.Fatalf("identity table layout: %s %v", layout, err)
	}
	step("a path rule denies", chromedp.Navigate(h.AppURL(0, "/admin")), chromedp.WaitVisible(chromedp.CSS("body")))
	if page = text(); !strings.Contains(page, "Access denied") || !strings.Contains(page, "SmartMoney.Admin") ||
		!strings.Contains(page, "alice@contoso.example may not use SmartMoney") || !strings.Contains(page, "Sign in as someone else") {
		t.Fatalf("/admin: want the 403 page naming the app and offering another sign-in, got\n%s", page)
	}
	screenshot(t, ctx, "denied")
	step("sign in as someone else", chromedp.Click(chromedp.CSS(`a[href="/.postern/logout"]`)), chromedp.WaitVisible(chromedp.CSS("body")))
	waitForText(t, ctx, "Signed out")
	if loc = location(); !strings.HasPrefix(loc, h.AuthURL()) {
		t.Fatalf("logout ended at %s, want the auth host", loc)
	}
	screenshot(t, ctx, "signed-out")
	bob := chromedp.CSS(`button[data-user="bob"]`)
	step("the app asks to sign in again", chromedp.Navigate(h.AppURL(0, "/admin")), chromedp.WaitVisible(bob))
	if loc = location(); !strings.HasPrefix(loc, h.IdPURL()) {
		t.Fatalf("after logout the app went to %s, want the sign-in page", loc)
	}
	// bob (role SmartMoney.Admin) gets the admin area: an allowed request
	// looks allowed.
	step("sign in as bob", chromedp.Click(bob), chromedp.WaitVisible(chromedp.CSS("body")))
	waitForText(t, ctx, "Admin area of SmartMoney")
	if page, loc = text(), location(); !strings.HasPrefix(loc, h.AppURL(0, "/admin")) || !strings.Contains(page, "Bob Brown") {
		t.Fatalf("bob at %s: want the admin area greeting Bob Brown, got\n%s", loc, page)
	}
	screenshot(t, ctx, "admin")
}

// identityLayoutJS checks the sample app's identity table: "ok", or what
// is wrong.
const identityLayoutJS = `(() => {
  const rows = [...document.querySelectorAll('#headers tr')].slice(1);
  const lines = el => { const r = document.createRange(); r.selectNodeContents(el); return r.getClientRects().length; };
  for (const row of rows) {
    if (lines(row.cells[0]) !== 1) return 'header name ' + row.cells[0].innerText + ' wraps';
  }
  const a = rows.find(r => r.cells[0].innerText === 'X-Postern-Assertion');
  if (!a) return 'no X-Postern-Assertion row';
  if (lines(a.cells[1]) < 2) return 'the assertion does not wrap';
  if (document.documentElement.scrollWidth > window.innerWidth) return 'the page is wider than the window';
  return 'ok';
})()`

// newBrowser starts a headless Chromium that trusts exactly h's
// certificate, and returns the context of its first tab; it stops with t.
func newBrowser(t *testing.T, h *Harness) context.Context {
	t.Helper()
	spki := sha256.Sum256(h.cert.Leaf.RawSubjectPublicKeyInfo)
	// Trust exactly the harness's certificate, nothing else.
	return browsertest.New(t, chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])))
}

// waitForText polls the page of ctx until it contains want; the redirect
// chain after a click cuts polls off ("navigated"), so it polls again.
func waitForText(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // a bound for a broken flow, generous for a busy machine
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.body && document.body.innerText.includes(`+strconv.Quote(want)+`)`,
			chromedp.WithPollingTimeout(5*time.Second)))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			page, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("the page never showed %q: %v\n%s", want, err, page)
		}
		time.Sleep(50 * time.Millisecond) // let the navigation finish before polling again
	}
}

// TestBrowserTwoTabs opens the app in two tabs of one browser before
// signing in, as users do after their session expired, then signs in in
// each: both sign-ins complete, each tab back where it started.
func TestBrowserTwoTabs(t *testing.T) {
	h := start(t, Options{Auth: true})
	tab1 := newBrowser(t, h)
	alice := chromedp.CSS(`button[data-user="alice"]`)
	open := func(i int, tab context.Context) {
		t.Helper()
		u := h.AppURL(0, fmt.Sprintf("/headers?tab=%d", i))
		if err := chromedp.Do(tab, chromedp.Navigate(u), chromedp.WaitVisible(alice)); err != nil {
			t.Fatalf("tab %d: open the app: %v", i, err)
		}
	}
	open(1, tab1)                             // starts the browser
	tab2, cancel := chromedp.NewContext(tab1) // a second tab of the same browser
	defer cancel()
	open(2, tab2)
	for i, tab := range []context.Context{tab1, tab2} {
		if err := chromedp.Do(tab, chromedp.Click(alice)); err != nil {
			t.Fatalf("tab %d: sign in: %v", i+1, err)
		}
		waitForText(t, tab, "X-Postern-User")
		loc, err := chromedp.Run(tab, chromedp.Location())
		if err != nil || loc != h.AppURL(0, fmt.Sprintf("/headers?tab=%d", i+1)) {
			t.Fatalf("tab %d ended at %q (%v), want where it started", i+1, loc, err)
		}
	}
}

// screenshot saves a PNG of the page when POSTERN_SCREENSHOTS names a
// directory, for a person to look at.
func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("POSTERN_SCREENSHOTS")
	if dir == "" {
		return
	}
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
	}
}
