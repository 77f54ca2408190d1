package benchrun

import (
	"context"
	"sync"
	"sync/atomic"
)

// connRow returns the row of a load whose ops each use one connection
// from a pool of at most conc, dialled on first need. A connection whose
// op failed, or that was in use when the run ended, is closed with
// closeConn instead of going back; closing the row closes them all, then
// calls after (if not nil).
func connRow[C any](conc int, dial func(context.Context) (C, error), closeConn func(C),
	use func(context.Context, C, *atomic.Int64) error, after func()) *Row {
	pool := make(chan C, conc)
	var mu sync.Mutex // guards all
	var all []C
	op := func(ctx context.Context, read *atomic.Int64) error {
		var conn C
		select {
		case conn = <-pool:
		default:
			c, err := dial(ctx)
			if err != nil {
				return err
			}
			mu.Lock()
			all = append(all, c)
			mu.Unlock()
			conn = c
		}
		if err := use(ctx, conn, read); err != nil || ctx.Err() != nil {
			closeConn(conn)
			return err
		}
		pool <- conn
		return nil
	}
	closeAll := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range all {
			closeConn(c)
		}
		all = nil
		if after != nil {
			after()
		}
	}
	return &Row{Op: op, Close: closeAll}
}
