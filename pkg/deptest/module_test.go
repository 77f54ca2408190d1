package deptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// moduleRoot returns the directory holding the module's go.mod.
func moduleRoot(tb testing.TB) string {
	tb.Helper()
	out, err := goCommand(tb.Context(), "", nil, "env", "GOMOD")
	if err != nil {
		tb.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		tb.Fatalf("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod)
}

// goCommand runs the go command with args in dir (empty means the current
// directory) with extra environment entries appended. It returns standard
// output; on failure the error includes standard error.
func goCommand(ctx context.Context, dir string, env []string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &commandError{
			args:   append([]string{"go"}, args...),
			err:    err,
			stderr: strings.TrimSpace(stderr.String()),
		}
	}
	return stdout.Bytes(), nil
}

// commandError is a failed command with its standard error.
type commandError struct {
	args   []string
	err    error
	stderr string
}

func (e *commandError) Error() string {
	return fmt.Sprintf("%s: %v\n%s", strings.Join(e.args, " "), e.err, e.stderr)
}

func (e *commandError) Unwrap() error { return e.err }

// exitedNonZero reports whether err is a command that ran and exited with
// a non-zero status (rather than one that could not start).
func exitedNonZero(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}
