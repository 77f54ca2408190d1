// Package browsertest starts headless Chromium for end-to-end tests that
// need a real browser (sign-in, the status page). CI installs Debian's
// Chromium: a missing browser fails the test, it never skips it.
package browsertest

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path returns the path of Debian's Chromium (or Chrome) and fails tb when
// there is none.
func Path(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	tb.Fatal("no Chromium found: install Debian's chromium package (.ci/run does)")
	return ""
}

// New starts a headless Chromium with a fresh profile, no background
// networking, and the extra options (certificate trust, window size), and
// returns the context of its first tab, bounded to 90 s. The browser is
// stopped when tb ends.
func New(tb testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	tb.Helper()
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Path(tb)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	}, extra...)
	actx, cancelA := chromedp.NewExecAllocator(tb.Context(), opts...)
	tb.Cleanup(cancelA)
	ctx, cancel := chromedp.NewContext(actx)
	tb.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	tb.Cleanup(cancelT)
	return ctx
}
