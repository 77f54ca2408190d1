package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// mixedLoad sends, from each worker in turn, GET /hello and a POST of a
// 4 KiB body to /echo (a request the edge may not retry once sent), until
// halted, and records every outcome.
type mixedLoad struct {
	ok, failed atomic.Int64
	stopping   atomic.Bool // halt called: start no new request
	wg         sync.WaitGroup
	mu         sync.Mutex
	errs       []string
	results    []loadResult
}

// loadResult is one request of a mixedLoad: when it started and ended,
// and whether it succeeded.
type loadResult struct {
	start, end time.Time
	post, ok   bool
	answerErr  string // set when the request got a wrong answer
}

// startMixedLoad starts workers that use c against base ("https://host:port").
func startMixedLoad(tb testing.TB, c *http.Client, base string, workers int) *mixedLoad {
	return startLoadOf(tb, c, base, "/hello", workers, true)
}

// startGETLoad starts workers that only GET path from base.
func startGETLoad(tb testing.TB, c *http.Client, base, path string, workers int) *mixedLoad {
	return startLoadOf(tb, c, base, path, workers, false)
}

func startLoadOf(tb testing.TB, c *http.Client, base, getPath string, workers int, posts bool) *mixedLoad {
	ctx := tb.Context()
	l := &mixedLoad{}
	body := bytes.Repeat([]byte("postern "), 512)
	for w := range workers {
		l.wg.Go(func() {
			for i := w; ctx.Err() == nil && !l.stopping.Load(); i++ {
				post := posts && i%2 == 1
				began := time.Now()
				err := l.one(ctx, c, base, getPath, post, body)
				if ctx.Err() != nil {
					return // the test ended: this one does not count
				}
				l.mu.Lock()
				r := loadResult{start: began, end: time.Now(), post: post, ok: err == nil}
				if ae := (*answerError)(nil); errors.As(err, &ae) {
					r.answerErr = ae.msg
				}
				l.results = append(l.results, r)
				if err != nil {
					l.errs = append(l.errs, err.Error())
				}
				l.mu.Unlock()
				if err != nil {
					l.failed.Add(1)
					time.Sleep(10 * time.Millisecond) // no busy loop against a refusing node
				} else {
					l.ok.Add(1)
				}
			}
		})
	}
	return l
}

func (l *mixedLoad) one(ctx context.Context, c *http.Client, base, getPath string, post bool, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+getPath, nil)
	if post {
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, base+"/echo", bytes.NewReader(body))
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode != http.StatusOK:
		return &answerError{fmt.Sprintf("%s: status %d: %.200s", req.Method, resp.StatusCode, got)}
	case err != nil:
		return &answerError{fmt.Sprintf("%s: body cut: %v", req.Method, err)}
	case post && !bytes.Equal(got, body):
		return &answerError{fmt.Sprintf("POST: echo of %d bytes for %d", len(got), len(body))}
	}
	return nil
}

// answerError is a request that got an answer, but a wrong one: an error
// status, a body cut short or a wrong body. The other errors are the
// client's own (connection refused or closed before an answer).
type answerError struct{ msg string }

func (e *answerError) Error() string { return e.msg }

// answerErrors returns the failures that got a wrong answer.
func (l *mixedLoad) answerErrors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.results {
		if r.answerErr != "" {
			out = append(out, r.answerErr)
		}
	}
	return out
}

// waitOK waits until n more requests succeeded.
func (l *mixedLoad) waitOK(tb testing.TB, n int64) {
	tb.Helper()
	target := l.ok.Load() + n
	if err := WaitFor(tb.Context(), 30*time.Second, func() bool { return l.ok.Load() >= target }); err != nil {
		tb.Fatalf("load stalled at %d successes (%d failed): %v", l.ok.Load(), l.failed.Load(), first(l.errors(), 5))
	}
}

// halt stops the workers from starting requests and waits for those in
// flight to end.
func (l *mixedLoad) halt() {
	l.stopping.Store(true)
	l.wg.Wait()
}

func (l *mixedLoad) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

// stalls returns, for the requests in flight at t (started before, ended
// after), how long after t each ended: their median and maximum, and how
// many there were.
func (l *mixedLoad) stalls(t time.Time) (p50, max time.Duration, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ds []time.Duration
	for _, r := range l.results {
		if r.start.Before(t) && r.end.After(t) {
			ds = append(ds, r.end.Sub(t))
		}
	}
	if len(ds) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds[len(ds)-1], len(ds)
}

// reply is the outcome of a request sent by sendAsync.
type reply struct {
	resp *http.Response
	err  error
}

// sendAsync sends req with c in a goroutine; the reply comes on the
// channel, which holds it until read.
func sendAsync(c *http.Client, req *http.Request) chan reply {
	replies := make(chan reply, 1)
	go func() {
		resp, err := c.Do(req)
		replies <- reply{resp, err}
	}()
	return replies
}
