package infratest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// repoRoot returns the repository root (two levels above this package).
func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		tb.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

// testContext returns a context that ends a minute before the test
// binary's deadline (go test -timeout), or with the test: long enough for
// any command on a loaded machine, and early enough to fail with the
// command's output instead of the binary's panic.
func testContext(tb testing.TB) (context.Context, context.CancelFunc) {
	ctx := tb.Context()
	if t, ok := tb.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := t.Deadline(); ok {
			return context.WithDeadline(ctx, d.Add(-time.Minute))
		}
	}
	return context.WithCancel(ctx)
}

// run runs name with args in dir (the repository root if empty), with env
// added to the environment, and returns its standard output; a failure, or
// a run still going a minute before the test binary's deadline, fails the
// test with the command's output (and says it timed out).
func run(tb testing.TB, dir string, env []string, name string, args ...string) []byte {
	tb.Helper()
	out, err := runErr(tb, dir, env, name, args...)
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// runErr is run without failing: it returns the combined output on error.
func runErr(tb testing.TB, dir string, env []string, name string, args ...string) ([]byte, error) {
	tb.Helper()
	ctx, cancel := testContext(tb)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, name, args...)
	if dir == "" {
		dir = repoRoot(tb)
	}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %s (killed a minute before the test deadline): %w", time.Since(start).Round(time.Second), err)
		}
		return append(stdout.Bytes(), stderr.Bytes()...), err
	}
	return stdout.Bytes(), nil
}

// buildTool compiles one of infra/tools into dir and returns its path.
func buildTool(tb testing.TB, dir, name string) string {
	tb.Helper()
	out := filepath.Join(dir, name)
	run(tb, "", nil, "go", "build", "-o", out, "./infra/tools/"+name)
	return out
}
