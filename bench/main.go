// Command bench is Postern's latency and throughput benchmark tool.
//
//	bench run --scenarios LIST --out DIR [--duration D] [--warmup W]
//
// It starts the whole system in process, runs the named scenarios (see
// pkg/benchrun) and writes DIR/results.json, DIR/results.md and
// DIR/machine.json.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/postern/postern/pkg/benchrun"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

const usage = `usage: bench <command> [flags]

commands:
  run    run benchmark scenarios in process and write the results (bench run -h)
`

func dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "run":
		return runCmd(ctx, args[1:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func runCmd(ctx context.Context, args []string) error {
	def := benchrun.DefaultConfig()
	var names []string
	for _, s := range benchrun.Builtin() {
		names = append(names, s.Name)
	}
	fs := flag.NewFlagSet("bench run", flag.ContinueOnError)
	scenarios := fs.String("scenarios", "", "comma-separated scenarios: "+strings.Join(names, ", "))
	out := fs.String("out", "", "directory for results.json, results.md and machine.json")
	fs.DurationVar(&def.Duration, "duration", def.Duration, "recorded time per row")
	fs.DurationVar(&def.Warmup, "warmup", def.Warmup, "unrecorded warm-up per row")
	fs.Int64Var(&def.BulkBytes, "bulk-bytes", benchrun.DefaultBulkBytes, "size of one bulk download")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("run: --out is required")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("run: unexpected arguments %q", fs.Args())
	}
	cfg := def
	cfg.Scenarios = splitList(*scenarios)
	cfg.Progress = os.Stdout
	rep, err := benchrun.Run(ctx, cfg)
	if len(rep.Rows) > 0 {
		if werr := rep.Write(*out); werr != nil {
			return werr
		}
		fmt.Printf("wrote %s/results.json, results.md, machine.json\n", *out)
	}
	return err
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
