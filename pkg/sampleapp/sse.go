package sampleapp

import (
	"fmt"
	"net/http"
	"time"
)

// MaxEvents is the largest number of events /sse sends in one response.
const MaxEvents = 10000

// MaxEventInterval is the longest pause /sse accepts between events.
const MaxEventInterval = time.Minute

// serveEvents sends n server-sent events "data: <i> <unix-nano>", flushing
// each one as soon as it is written, with interval between them.
func (a *App) serveEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, err := intParam(q, "n", 5, 1, MaxEvents)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	interval, err := durationParam(q, "interval", 100*time.Millisecond, MaxEventInterval)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	ctx := r.Context()
	t := time.NewTimer(interval)
	defer t.Stop()
	for i := range n {
		if i > 0 {
			t.Reset(interval)
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
		fmt.Fprintf(w, "data: %d %d\n\n", i, a.now().UnixNano())
		if err := rc.Flush(); err != nil {
			a.logger.Debug("sse flush failed", "event", i, "err", err)
			return
		}
	}
}
