package benchrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/simnet"
	"github.com/postern/postern/pkg/streambind"
	"github.com/postern/postern/pkg/tracing"
)

// BenchUser is the development identity provider's user the tunnel-auth
// scenario signs in as.
const BenchUser = "alice"

// Config configures a benchmark run.
type Config struct {
	// Scenarios names the built-in scenarios to run, in order; it must not
	// be empty. RunOn ignores it.
	Scenarios []string
	// Concurrency, if not empty, replaces the concurrency levels of every
	// scenario that is not FixedConcurrency.
	Concurrency []int
	// Rate, when positive, runs the rows of every scenario that is not
	// ClosedOnly as an open loop at Rate requests per second; zero means
	// closed loops.
	Rate float64
	// Warmup is the unrecorded time before each row; zero means none.
	Warmup time.Duration
	// Duration is the recorded time of each row; it must be positive
	// unless Requests is set.
	Duration time.Duration
	// Requests, when positive, bounds each row by a recorded request count
	// instead (Duration, if also set, still caps it); zero means none.
	Requests int64
	// Repeats is how many times each row runs (all rows once, then all
	// again, and so on), merged into one row with the run-to-run spread;
	// zero means 1.
	Repeats int
	// BulkBytes is the size of one bulk download; zero means
	// DefaultBulkBytes.
	BulkBytes int64
	// MaxRequests bounds the requests of each row; zero means
	// DefaultMaxRequests.
	MaxRequests int64
	// Progress receives a one-line summary of each row as it completes;
	// nil discards.
	Progress io.Writer
	// Live, if set, receives a progress line rewritten in place (carriage
	// return) while each row runs: meant for a terminal. Nil means none.
	Live io.Writer
	// Logger receives the system's logs; nil discards.
	Logger *slog.Logger
	// Matrix is the RTT matrix of the regions scenario; nil means
	// simnet.DefaultMatrix().
	Matrix *simnet.Matrix
	// MatrixName says where Matrix came from (a file path) in the report;
	// empty means "default".
	MatrixName string
	// Tracing, if set, turns tracing on in the mesh node and connector of
	// the standard system (the tunnel and auth scenarios), exporting to
	// its endpoint; nil means tracing off. bench run sets it from the
	// OTEL_* variables (pkg/tracing).
	Tracing *tracing.Config
}

func (c Config) matrix() *simnet.Matrix {
	if c.Matrix == nil {
		return simnet.DefaultMatrix()
	}
	return c.Matrix
}

func (c Config) matrixName() string {
	if c.MatrixName == "" {
		return "default"
	}
	return c.MatrixName
}

// DefaultConfig returns the settings of a standard run of the given
// scenarios: 1s warm-up and 2s recorded per row.
func DefaultConfig(scenarios ...string) Config {
	return Config{Scenarios: scenarios, Warmup: time.Second, Duration: 2 * time.Second}
}

func (c Config) bulkBytes() int64 {
	if c.BulkBytes == 0 {
		return DefaultBulkBytes
	}
	return c.BulkBytes
}

func (c Config) validate() error {
	if err := (LoadConfig{Warmup: c.Warmup, Duration: c.Duration, Requests: c.Requests, MaxRequests: c.MaxRequests,
		Rate: c.Rate}).validate(); err != nil {
		return err
	}
	switch {
	case c.BulkBytes < 0:
		return fmt.Errorf("benchrun: bulk size %d is negative", c.BulkBytes)
	case c.Repeats < 0:
		return fmt.Errorf("benchrun: repeat count %d is negative", c.Repeats)
	}
	for _, n := range c.Concurrency {
		if n < 1 {
			return fmt.Errorf("benchrun: concurrency %d is not positive", n)
		}
	}
	return nil
}

// Run starts one in-process Postern system with sign-in on (one mesh node,
// one connector, the sample app both passthrough and pre-authenticated,
// the development identity provider and the auth functions), signs
// BenchUser in, runs cfg.Scenarios on it and stops it. The failover,
// relay, regions and *-stream scenarios start systems of their own, each
// at most once per run (failover: once per row), and stop them before Run
// returns. It returns the rows completed so far with any error.
func Run(ctx context.Context, cfg Config) (Report, error) {
	scs, err := Lookup(cfg.Scenarios)
	if err != nil {
		return Report{}, err
	}
	if err := cfg.validate(); err != nil {
		return Report{}, err
	}
	targets, err := startTCPTargets()
	if err != nil {
		return Report{}, err
	}
	defer targets.close()
	h, err := harness.Start(ctx, harness.Options{Connectors: 1, Auth: true, Logger: cfg.Logger, ExtraCatalog: targets.catalog(), Tracing: cfg.Tracing})
	if err != nil {
		return Report{}, fmt.Errorf("benchrun: start system: %w", err)
	}
	defer func() { _ = h.Close() }()
	ck, err := h.SignIn(ctx, BenchUser)
	if err != nil {
		return Report{}, fmt.Errorf("benchrun: sign in: %w", err)
	}
	tok, err := h.ClientCredentials(ctx, harness.DaemonClientID, harness.DaemonSecret, harness.APIIdentifier+"/.default")
	if err != nil {
		return Report{}, fmt.Errorf("benchrun: bearer token: %w", err)
	}
	sys := &harnessSystem{h: h, cookie: ck, bearer: tok, tcp: targets, logger: cfg.Logger, matrix: cfg.matrix()}
	defer func() { _ = sys.Close() }()
	return RunOn(ctx, sys, scs, cfg)
}

// RunOn runs scenarios on sys, each at each of its concurrency levels,
// cfg.Repeats times, and returns the rows with comparisons filled in. It
// returns the rows completed so far with any error.
func RunOn(ctx context.Context, sys System, scenarios []Scenario, cfg Config) (Report, error) {
	rep := Report{Machine: DescribeMachine(), Warmup: cfg.Warmup, Duration: cfg.Duration, Requests: cfg.Requests,
		Rate: cfg.Rate, Repeats: max(cfg.Repeats, 1), Matrix: cfg.matrixName(), MatrixSources: cfg.matrix().Sources()}
	if err := cfg.validate(); err != nil {
		return rep, err
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	type key struct {
		s, conc, v int
	}
	variants := make([][]Variant, len(scenarios))
	for si, s := range scenarios {
		variants[si] = []Variant{{}}
		if s.Variants != nil {
			variants[si] = s.Variants(cfg)
		}
	}
	var order []key
	runs := map[key][]Result{}
	finish := func() {
		rep.Rows = rep.Rows[:0]
		var reps [][]Result
		for _, k := range order {
			if len(runs[k]) > 0 {
				rep.Rows = append(rep.Rows, combine(runs[k]))
				reps = append(reps, runs[k])
			}
		}
		annotate(rep.Rows)
		pairRatios(rep.Rows, reps)
	}
	for i := range rep.Repeats {
		// Each repeat starts one scenario later, so that no row always
		// runs in the same place (first after direct, say) of a machine
		// whose speed drifts.
		for j := range scenarios {
			si := (j + i) % len(scenarios)
			s := scenarios[si]
			levels := s.Concurrency
			if len(cfg.Concurrency) > 0 && !s.FixedConcurrency {
				levels = cfg.Concurrency
			}
			for _, c := range levels {
				for vi, v := range variants[si] {
					k := key{si, c, vi}
					if i == 0 {
						order = append(order, k)
					}
					r, err := runRow(ctx, sys, s, Params{Concurrency: c, BulkBytes: cfg.bulkBytes(), Variant: v}, cfg)
					if err != nil {
						finish()
						return rep, err
					}
					runs[k] = append(runs[k], r)
					line := r.Summary()
					if rep.Repeats > 1 {
						line = fmt.Sprintf("[%d/%d] %s", i+1, rep.Repeats, line)
					}
					fmt.Fprintln(progress, line)
				}
			}
		}
	}
	finish()
	return rep, nil
}

func runRow(ctx context.Context, sys System, s Scenario, p Params, cfg Config) (Result, error) {
	conc, name := p.Concurrency, s.Name
	if p.Variant != (Variant{}) {
		name += " " + p.Variant.Strategy + "@" + p.Variant.UserRegion
	}
	row, err := s.Open(ctx, sys, p)
	if err != nil {
		return Result{}, fmt.Errorf("benchrun: %s c=%d: %w", name, conc, err)
	}
	if row.Close != nil {
		defer row.Close()
	}
	if row.Concurrency > 0 {
		conc = row.Concurrency
	}
	lc := LoadConfig{Concurrency: conc, Warmup: cfg.Warmup, Duration: cfg.Duration, Requests: cfg.Requests,
		MaxRequests: cfg.MaxRequests, Prime: s.Prime, OnWindow: row.OnWindow, Done: new(atomic.Int64)}
	if !s.ClosedOnly {
		lc.Rate = cfg.Rate
	}
	if s.MaxWarmup > 0 {
		lc.Warmup = min(lc.Warmup, s.MaxWarmup)
	}
	if s.MinRequests > 0 && lc.Requests == 0 {
		lc.Requests, lc.Duration = s.MinRequests, 0
	}
	if s.MinDuration > 0 && (lc.Requests > 0 || lc.Duration < s.MinDuration) {
		lc.Requests, lc.Duration = 0, max(lc.Duration, s.MinDuration)
	}
	stop := live(cfg.Live, name, conc, lc.Done)
	st, err := RunLoad(ctx, lc, row.Op)
	stop()
	if err != nil {
		return Result{}, fmt.Errorf("benchrun: %s c=%d: %w", name, conc, err)
	}
	r := newResult(s, conc, lc.Rate, st)
	if row.Finish != nil {
		row.Finish(&r)
	}
	return r, nil
}

// live rewrites a progress line on w every 200ms until the returned stop
// is called, which erases it. A nil w shows nothing.
func live(w io.Writer, name string, conc int, done *atomic.Int64) (stop func()) {
	if w == nil {
		return func() {}
	}
	start := time.Now()
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprintf(w, "\r\033[K%s c=%d  %.1fs  %d requests", name, conc, time.Since(start).Seconds(), done.Load())
			}
		}
	}()
	return func() {
		close(quit)
		wg.Wait()
	}
}

// harnessSystem adapts a running harness (with sign-in, or without for
// the stream carrier's) to System, through mesh node 0. It starts the
// systems of the relay, regions and stream scenarios on first use and
// stops them in Close. Its methods are called from one goroutine at a
// time.
type harnessSystem struct {
	h      *harness.Harness
	cookie *http.Cookie
	bearer string      // an app-only token for the records API; "" without sign-in
	tcp    *tcpTargets // nil without TCP apps
	logger *slog.Logger
	matrix *simnet.Matrix // of the regions system

	regions *regionHarness // nil until started
	relay   *relayHarness  // nil until started
	stream  *harnessSystem // nil until started
	closers []func() error // of the systems started, in start order
}

// Close stops the systems the relay, regions and stream scenarios started,
// newest first; it does not stop h. It is idempotent.
func (s *harnessSystem) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	s.closers, s.regions, s.relay, s.stream = nil, nil, nil, nil
	return errors.Join(errs...)
}

func (s *harnessSystem) Regions(ctx context.Context) (RegionSystem, error) {
	if s.regions == nil {
		r, err := startRegions(ctx, s.matrix, s.logger)
		if err != nil {
			return nil, err
		}
		s.regions = r
		s.closers = append(s.closers, r.h.Close)
	}
	return s.regions, nil
}

func (s *harnessSystem) Relay(ctx context.Context) (RelaySystem, error) {
	if s.relay == nil {
		r, err := startRelay(ctx, s.logger)
		if err != nil {
			return nil, err
		}
		s.relay = r
		s.closers = append(s.closers, r.h.Close)
	}
	return s.relay, nil
}

// Stream starts a harness without sign-in whose one connector uses the
// stream carrier.
func (s *harnessSystem) Stream(ctx context.Context) (System, error) {
	if s.stream == nil {
		h, err := harness.Start(ctx, harness.Options{Connectors: 1, Carrier: streambind.CarrierStream, Logger: s.logger})
		if err != nil {
			return nil, fmt.Errorf("benchrun: start stream-carrier system: %w", err)
		}
		s.stream = &harnessSystem{h: h, logger: s.logger, matrix: s.matrix}
		s.closers = append(s.closers, s.stream.Close, h.Close)
	}
	return s.stream, nil
}

func (s *harnessSystem) DirectURL(path string) string { return s.h.App + path }

// TunnelURL is the passthrough host: the open one beside the
// pre-authenticated app with sign-in, else the app's own host.
func (s *harnessSystem) TunnelURL(path string) string {
	if s.cookie == nil {
		return s.h.AppURL(0, path)
	}
	return s.h.OpenAppURL(0, path)
}

// AuthURL is "" without sign-in: the app's host is then passthrough.
func (s *harnessSystem) AuthURL(path string) string {
	if s.cookie == nil {
		return ""
	}
	return s.h.AppURL(0, path)
}

func (s *harnessSystem) AuthCookie() *http.Cookie { return s.cookie }

// Bearer is the records API (the same sample app) with a daemon's token.
func (s *harnessSystem) Bearer(path string) (string, string) {
	if s.bearer == "" {
		return "", ""
	}
	return s.h.APIURL(0, path), s.bearer
}

// TCP reaches the TCP apps through mesh node 0 with the daemon's token.
func (s *harnessSystem) TCP() (TCPSystem, error) {
	if s.tcp == nil || s.bearer == "" {
		return nil, fmt.Errorf("benchrun: %w", ErrNoTCP)
	}
	return tcpClients{s.tcp.client(s.h, tcpEchoApp, s.bearer), s.tcp.client(s.h, tcpSourceApp, s.bearer)}, nil
}
func (s *harnessSystem) TunnelTransport() *http.Transport { return s.h.MeshTransport(0) }

// Failover starts a harness without sign-in and with two connectors.
func (s *harnessSystem) Failover(ctx context.Context) (FailoverSystem, error) {
	h, err := harness.Start(ctx, harness.Options{Connectors: 2, Logger: s.logger})
	if err != nil {
		return nil, fmt.Errorf("benchrun: start failover system: %w", err)
	}
	return failoverHarness{h}, nil
}

// failoverHarness adapts a harness with two connectors to FailoverSystem.
type failoverHarness struct{ h *harness.Harness }

func (f failoverHarness) TunnelURL(path string) string     { return f.h.AppURL(0, path) }
func (f failoverHarness) TunnelTransport() *http.Transport { return f.h.MeshTransport(0) }
func (f failoverHarness) Kill()                            { f.h.KillConnector(0) }
func (f failoverHarness) Close() error                     { return f.h.Close() }
