package benchrun

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/postern/postern/pkg/harness"
)

// Config configures a benchmark run.
type Config struct {
	// Scenarios names the built-in scenarios to run, in order; it must not
	// be empty. RunOn ignores it.
	Scenarios []string
	// Warmup is the unrecorded time before each row; zero means none.
	Warmup time.Duration
	// Duration is the recorded time of each row; it must be positive.
	Duration time.Duration
	// BulkBytes is the size of one bulk download; zero means
	// DefaultBulkBytes.
	BulkBytes int64
	// MaxRequests bounds the requests of each row; zero means
	// DefaultMaxRequests.
	MaxRequests int64
	// Progress receives a one-line summary of each row as it completes;
	// nil discards.
	Progress io.Writer
	// Logger receives the system's logs; nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns the settings of a standard run of the given
// scenarios: 1s warm-up and 5s recorded per row.
func DefaultConfig(scenarios ...string) Config {
	return Config{Scenarios: scenarios, Warmup: time.Second, Duration: 5 * time.Second}
}

func (c Config) bulkBytes() int64 {
	if c.BulkBytes == 0 {
		return DefaultBulkBytes
	}
	return c.BulkBytes
}

// Run starts one in-process Postern system (one mesh node, one connector,
// the sample app), runs cfg.Scenarios on it and stops it. It returns the
// rows completed so far with any error.
func Run(ctx context.Context, cfg Config) (Report, error) {
	scs, err := Lookup(cfg.Scenarios)
	if err != nil {
		return Report{}, err
	}
	if err := (LoadConfig{Warmup: cfg.Warmup, Duration: cfg.Duration, MaxRequests: cfg.MaxRequests}).validate(); err != nil {
		return Report{}, err
	}
	if cfg.BulkBytes < 0 {
		return Report{}, fmt.Errorf("benchrun: bulk size %d is negative", cfg.BulkBytes)
	}
	h, err := harness.Start(ctx, harness.Options{Connectors: 1, Logger: cfg.Logger})
	if err != nil {
		return Report{}, fmt.Errorf("benchrun: start system: %w", err)
	}
	defer h.Close()
	return RunOn(ctx, harnessSystem{h}, scs, cfg)
}

// RunOn runs scenarios on sys, each at each of its concurrency levels, and
// returns the rows with baseline comparisons filled in. It returns the rows
// completed so far with any error.
func RunOn(ctx context.Context, sys System, scenarios []Scenario, cfg Config) (Report, error) {
	rep := Report{Machine: DescribeMachine(), Warmup: cfg.Warmup, Duration: cfg.Duration}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	for _, s := range scenarios {
		for _, c := range s.Concurrency {
			r, err := runRow(ctx, sys, s, c, cfg)
			if err != nil {
				annotate(rep.Rows)
				return rep, err
			}
			rep.Rows = append(rep.Rows, r)
			annotate(rep.Rows)
			fmt.Fprintln(progress, rep.Rows[len(rep.Rows)-1].Summary())
		}
	}
	return rep, nil
}

func runRow(ctx context.Context, sys System, s Scenario, conc int, cfg Config) (Result, error) {
	op, closeOp, err := s.Open(sys, Params{Concurrency: conc, BulkBytes: cfg.bulkBytes()})
	if err != nil {
		return Result{}, fmt.Errorf("benchrun: %s c=%d: %w", s.Name, conc, err)
	}
	defer closeOp()
	st, err := RunLoad(ctx, LoadConfig{Concurrency: conc, Warmup: cfg.Warmup, Duration: cfg.Duration,
		MaxRequests: cfg.MaxRequests, Prime: !s.Bulk}, op)
	if err != nil {
		return Result{}, fmt.Errorf("benchrun: %s c=%d: %w", s.Name, conc, err)
	}
	r := newResult(s, conc, st)
	r.firstErr = st.FirstError
	return r, nil
}

// harnessSystem adapts a running harness to System, through mesh node 0.
type harnessSystem struct{ h *harness.Harness }

func (s harnessSystem) DirectURL(path string) string     { return s.h.App + path }
func (s harnessSystem) TunnelURL(path string) string     { return s.h.AppURL(0, path) }
func (s harnessSystem) TunnelTransport() *http.Transport { return s.h.MeshTransport(0) }
