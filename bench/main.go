// Command bench is Postern's latency and throughput benchmark tool.
//
//	bench run --scenarios LIST --out DIR [--duration D | --requests N] [--warmup W]
//	          [--rate R] [--repeat N] [--concurrency LIST] [--bulk-bytes B] [--matrix FILE]
//	bench run --remote URL [--cookie NAME=VALUE] --out DIR [same load flags]
//	bench compare [--threshold F] OLD.json NEW.json
//	bench real --out DIR [--rounds 3] [--duration 5s] [--warmup 1s] [--concurrency 1,32] [--bulk-bytes B]
//	bench load --url URL [--connect HOST:PORT] [--ca FILE] [--cookie N=V] [--concurrency N] [--duration D] [--warmup W] [--bulk-bytes B]
//	bench backend --listen ADDR
//	bench otlp-sink --listen ADDR
//	bench wgsplice [--inner] --udp PORT [--peer-udp PORT] --peer PUBKEY [--listen ADDR | --backend ADDR]   (key in POSTERN_BENCH_WG_KEY)
//	bench version
//
// run starts the whole system in process (or, with --remote, measures an
// already-deployed app), runs the named scenarios (see pkg/benchrun) and
// writes DIR/results.json, DIR/results.md, DIR/machine.json and
// DIR/charts/*.svg. real builds meshd, connectord and bench, starts them
// as separate processes (meshd, an enrolled connectord, a backend; a
// second pair with tracing on) and measures them with a separate load
// process per row, into DIR/real.json and DIR/real.md; load, backend,
// otlp-sink (the traced pair's collector) and wgsplice (the stock
// wireguard-go netstack TCP splice peer, one process per side) are its
// processes.
// compare prints the change of every figure between two
// results.json files and exits with status 1 when one regressed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/postern/postern/pkg/benchrun"
	"github.com/postern/postern/pkg/cli"
	"github.com/postern/postern/pkg/sampleapp"
	"github.com/postern/postern/pkg/simnet"
	"github.com/postern/postern/pkg/tracing"
	"github.com/postern/postern/pkg/tracing/tracingtest"
	"github.com/postern/postern/pkg/wgkey"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// Libraries inside the in-process system (the development identity
	// provider's) log through the default logger: keep only warnings.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	app := &cli.App{Name: "bench", Summary: "Postern's latency and throughput benchmark tool", Commands: []cli.Command{
		{Name: "run", Summary: "run benchmark scenarios (in process, or --remote URL) and write the results", Flags: runCmd},
		{Name: "compare", Args: "OLD.json NEW.json", Summary: "compare two results.json files; exit status 1 on a regression", Flags: compareCmd},
		{Name: "real", Summary: "benchmark the real meshd and connectord binaries as separate processes; write DIR/real.json and real.md", Flags: realCmd},
		{Name: "load", Summary: "one load process of bench real: GET a URL and print the figures as JSON", Flags: loadCmd},
		{Name: "backend", Summary: "the plain Go backend of bench real (the sample app)", Flags: backendCmd},
		{Name: "otlp-sink", Summary: "the OTLP/HTTP trace sink of bench real's postern-traced row: reads and discards every export", Flags: otlpSinkCmd},
		{Name: "wgsplice", Summary: "one side of bench real's stock wireguard-go netstack TCP splice peer", Flags: wgspliceCmd},
	}}
	code := app.Exit(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func runCmd(fs *flag.FlagSet) func(context.Context) error {
	cfg := benchrun.DefaultConfig()
	scenarios := fs.String("scenarios", "", "comma-separated scenarios; standard suite: "+strings.Join(benchrun.StandardSuite(), ", ")+
		"; extra suite: "+strings.Join(benchrun.ExtraSuite(), ", "))
	out := fs.String("out", "", "directory for results.json, results.md, machine.json and charts/")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "recorded time per row")
	fs.Int64Var(&cfg.Requests, "requests", 0, "recorded requests per row instead of --duration (0: use --duration)")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "unrecorded warm-up per row")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop at this many requests/s per row (0: closed loop)")
	fs.IntVar(&cfg.Repeats, "repeat", 1, "run every row this many times and report the spread")
	fs.Int64Var(&cfg.BulkBytes, "bulk-bytes", benchrun.DefaultBulkBytes, "size of one bulk download")
	conc := fs.String("concurrency", "", "comma-separated concurrency levels replacing the scenarios' own (not bulk or failover)")
	remote := fs.String("remote", "", "measure this deployed app URL instead of the in-process system")
	cookie := fs.String("cookie", "", "with --remote: a NAME=VALUE cookie sent with every request")
	matrix := fs.String("matrix", "", "RTT matrix file of the regions scenario (format: pkg/simnet/README.md; empty: the default matrix)")
	return func(ctx context.Context) error {
		return run(ctx, fs, cfg, *scenarios, *out, *conc, *remote, *cookie, *matrix)
	}
}

func run(ctx context.Context, fs *flag.FlagSet, cfg benchrun.Config, scenarios, outDir, conc, remote, cookie, matrix string) error {
	if outDir == "" {
		return fmt.Errorf("run: --out is required")
	}
	levels, err := parseInts(conc)
	if err != nil {
		return fmt.Errorf("run: --concurrency: %w", err)
	}
	cfg.Concurrency = levels
	tc, err := tracing.FromEnv(os.Getenv)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if tc.Enabled() {
		cfg.Tracing = &tc
		fmt.Println("tracing on (OTEL_* variables): the mesh node and connector export spans")
	}
	if matrix != "" {
		if cfg.Matrix, err = simnet.LoadMatrix(matrix); err != nil {
			return fmt.Errorf("run: --matrix: %w", err)
		}
		cfg.MatrixName = matrix
	}
	if cfg.Requests > 0 && !flagSet(fs, "duration") {
		cfg.Duration = 0 // bounded by the count alone
	}
	cfg.Progress = os.Stdout
	if term.IsTerminal(int(os.Stdout.Fd())) {
		cfg.Live = os.Stdout
	}
	var rep benchrun.Report
	switch {
	case remote != "":
		if scenarios != "" {
			return fmt.Errorf("run: --remote measures one URL; drop --scenarios")
		}
		t := benchrun.RemoteTarget{URL: remote}
		if cookie != "" {
			if t.Cookie, err = benchrun.ParseCookie(cookie); err != nil {
				return fmt.Errorf("run: --cookie: %w", err)
			}
		}
		rep, err = benchrun.RunRemote(ctx, t, cfg)
	case cookie != "":
		return fmt.Errorf("run: --cookie needs --remote")
	default:
		cfg.Scenarios = cli.List(scenarios)
		rep, err = benchrun.Run(ctx, cfg)
	}
	if len(rep.Rows) > 0 {
		if werr := rep.Write(outDir); werr != nil {
			return werr
		}
		fmt.Printf("wrote %s/results.json, results.md, machine.json, charts/\n", outDir)
	}
	return err
}

func compareCmd(fs *flag.FlagSet) func(context.Context) error {
	threshold := fs.Float64("threshold", benchrun.DefaultThreshold, "relative change flagged when a figure has no recorded spread")
	return func(context.Context) error { return compare(fs, *threshold) }
}

func compare(fs *flag.FlagSet, threshold float64) error {
	if fs.NArg() != 2 {
		return fmt.Errorf("compare: want OLD.json NEW.json, got %d arguments", fs.NArg())
	}
	if threshold <= 0 {
		return fmt.Errorf("compare: --threshold %v is not positive", threshold)
	}
	old, err := benchrun.ReadResults(fs.Arg(0))
	if err != nil {
		return err
	}
	cur, err := benchrun.ReadResults(fs.Arg(1))
	if err != nil {
		return err
	}
	c := benchrun.Compare(old, cur, threshold)
	c.Print(os.Stdout)
	if c.Regressed() {
		return cli.ErrSilent
	}
	return nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range cli.List(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func realCmd(fs *flag.FlagSet) func(context.Context) error {
	cfg := benchrun.RealConfig{Warmup: time.Second, Duration: 5 * time.Second, Rounds: 3}
	out := fs.String("out", "", "directory for real.json and real.md")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "recorded time per row and round")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "unrecorded warm-up per latency row and round")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "interleaved rounds (every row once, then again)")
	fs.Int64Var(&cfg.BulkBytes, "bulk-bytes", benchrun.DefaultBulkBytes, "size of one bulk download")
	fs.DurationVar(&cfg.Settle, "settle", 15*time.Second, "idle time after the last row before the processes' memory is read again (0: no second reading)")
	conc := fs.String("concurrency", "1,32", "comma-separated concurrency levels of the latency rows")
	rows := fs.String("rows", "", "comma-separated rows to run (empty: all): "+strings.Join(benchrun.RealRowNames, ", "))
	return func(ctx context.Context) error {
		if *out == "" {
			return fmt.Errorf("real: --out is required")
		}
		cfg.Rows = cli.List(*rows)
		levels, err := parseInts(*conc)
		if err != nil {
			return fmt.Errorf("real: --concurrency: %w", err)
		}
		cfg.Concurrency, cfg.Progress = levels, os.Stdout
		work, err := os.MkdirTemp("", "postern-bench-real-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(work)
		cfg.Dir = work
		rep, err := benchrun.RunReal(ctx, cfg)
		if len(rep.Rows) > 0 {
			if werr := rep.Write(*out); werr != nil {
				return werr
			}
			fmt.Printf("wrote %s/real.json, real.md\n", *out)
		}
		return err
	}
}

func loadCmd(fs *flag.FlagSet) func(context.Context) error {
	a := benchrun.LoadArgs{Concurrency: 1, Duration: 2 * time.Second}
	fs.StringVar(&a.URL, "url", "", "URL to GET (required)")
	fs.StringVar(&a.Connect, "connect", "", "host:port every connection dials instead of the URL's")
	fs.StringVar(&a.CAFile, "ca", "", "PEM file of the only CA trusted (empty: plain HTTP or the system roots)")
	fs.IntVar(&a.Concurrency, "concurrency", a.Concurrency, "workers, one connection each")
	fs.DurationVar(&a.Warmup, "warmup", 0, "unrecorded warm-up")
	fs.DurationVar(&a.Duration, "duration", a.Duration, "recorded time")
	fs.Int64Var(&a.BulkBytes, "bulk-bytes", 0, "expected body length of every response (0: a small GET)")
	cookie := fs.String("cookie", "", "a NAME=VALUE cookie sent with every request")
	return func(ctx context.Context) error {
		if a.URL == "" || a.Concurrency < 1 {
			return fmt.Errorf("load: --url and a positive --concurrency are required")
		}
		if *cookie != "" {
			var err error
			if a.Cookie, err = benchrun.ParseCookie(*cookie); err != nil {
				return fmt.Errorf("load: --cookie: %w", err)
			}
		}
		a.Bearer = os.Getenv("POSTERN_BENCH_BEARER") // a token: never a flag, which ps shows
		r, err := benchrun.RunLoadProcess(ctx, a)
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(r)
	}
}

func backendCmd(fs *flag.FlagSet) func(context.Context) error {
	listen := fs.String("listen", "127.0.0.1:8080", "HTTP listen address")
	return func(ctx context.Context) error {
		return serveHTTP(ctx, "backend", *listen, sampleapp.New(sampleapp.Config{}).Handler())
	}
}

func otlpSinkCmd(fs *flag.FlagSet) func(context.Context) error {
	listen := fs.String("listen", "127.0.0.1:4318", "HTTP listen address")
	return func(ctx context.Context) error {
		return serveHTTP(ctx, "otlp-sink", *listen, http.HandlerFunc(tracingtest.SinkHandler))
	}
}

// serveHTTP serves h on listen until ctx ends; errors are prefixed with
// name.
func serveHTTP(ctx context.Context, name, listen string, h http.Handler) error {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close() // ends Serve with ErrServerClosed; the listener's close error tells nothing
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func wgspliceCmd(fs *flag.FlagSet) func(context.Context) error {
	var a benchrun.SpliceArgs
	fs.BoolVar(&a.Inner, "inner", false, "the inner side (dials --backend); default the edge side (listens on --listen)")
	udp := fs.Uint("udp", 0, "this side's WireGuard UDP port on 127.0.0.1 (required)")
	peerUDP := fs.Uint("peer-udp", 0, "the edge side's: the inner side's WireGuard UDP port")
	peer := fs.String("peer", "", "the other side's WireGuard public key, base64 (required)")
	fs.StringVar(&a.Listen, "listen", "", "the edge side's TCP listen address")
	fs.StringVar(&a.Backend, "backend", "", "the inner side's TCP target")
	return func(ctx context.Context) error {
		var err error
		if a.Key, err = wgkey.ParsePrivate(os.Getenv("POSTERN_BENCH_WG_KEY")); err != nil {
			return fmt.Errorf("wgsplice: POSTERN_BENCH_WG_KEY: %w", err)
		}
		if a.Peer, err = wgkey.ParsePublic(*peer); err != nil {
			return fmt.Errorf("wgsplice: --peer: %w", err)
		}
		if *udp == 0 || *udp > 65535 || *peerUDP > 65535 || (a.Inner && a.Backend == "") || (!a.Inner && (a.Listen == "" || *peerUDP == 0)) {
			return fmt.Errorf("wgsplice: want --udp, and --backend (inner) or --listen and --peer-udp (edge)")
		}
		a.UDP, a.PeerUDP = uint16(*udp), uint16(*peerUDP)
		return benchrun.RunSplice(ctx, a)
	}
}
