package update

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"time"
)

// Where a process cannot replace itself with another binary (a Windows
// service: there is no exec, and the service manager watches the process
// it started), the installed binary stays the service's process and
// supervises: Supervise runs the binary Launch picks as a child, or the
// service itself in-process when nothing is staged, and starts over when
// that asks for a restart.

// RestartExitCode is the exit code with which a binary started by
// Supervise says it staged a new version and drained: start over.
const RestartExitCode = 75

// EnvSupervised marks a binary started by Supervise: it must stop (drain
// and exit) when its standard input reaches end of file, and exit with
// RestartExitCode to be restarted.
const EnvSupervised = "POSTERN_UPDATE_SUPERVISED"

// ErrRestart is what a service's run returns (wrapped or not) when it has
// staged a new version and drained, to be started over by Supervise.
var ErrRestart = errors.New("update: restart into the staged version")

// Runner runs what Supervise decides; [ExecRunner] is the real one.
type Runner interface {
	// Self runs the installed binary's service in this process until ctx
	// ends (nil) or it fails; it returns an error wrapping ErrRestart to
	// be started over.
	Self(ctx context.Context) error
	// Child runs the binary at path with env until it exits and returns
	// its exit code; when ctx ends it asks the child to stop (closing its
	// standard input) and waits for it.
	Child(ctx context.Context, path string, env []string) (int, error)
}

// SuperviseConfig configures [Supervise].
type SuperviseConfig struct {
	// Dir is the update directory (Launch's).
	Dir string
	// Env is the environment children start with.
	Env []string
	// Runner runs the service or the staged binaries. Required.
	Runner Runner
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock of the restart limit; nil means time.Now.
	Now func() time.Time
	// MaxRestarts is how many restarts within an hour Supervise allows
	// before it gives up (a binary that asks again and again); zero
	// means 6.
	MaxRestarts int
}

// Supervise runs, until ctx ends, what Launch picks: the service in this
// process (Runner.Self) when no version is staged, else the staged binary
// as a child (Runner.Child, with Launch's environment and EnvSupervised).
// It starts over after a restart (ErrRestart from Self, RestartExitCode
// from a child) and after a trial child fails (Launch then rolls it
// back); any other failure is returned, for the service manager's
// recovery to restart the service. It returns nil when ctx ends.
func Supervise(ctx context.Context, cfg SuperviseConfig) error {
	if cfg.Runner == nil {
		return errors.New("update: supervise: no Runner")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	limit := cfg.MaxRestarts
	if limit <= 0 {
		limit = 6
	}
	var restarts []time.Time
	for {
		if ctx.Err() != nil {
			return nil
		}
		d, err := Launch(cfg.Dir, cfg.Env)
		if err != nil {
			return err
		}
		if d.RolledBack != "" {
			logger.Warn("update_rolled_back", "version", d.RolledBack, "reason", "it did not attach on its trial start")
		}
		if d.Exec == "" {
			err := cfg.Runner.Self(ctx)
			if !errors.Is(err, ErrRestart) {
				return err
			}
			logger.Info("update_restart_supervised", "from", "self")
		} else {
			logger.Info("update_launch", "binary", d.Exec, "trial", d.Trial, "supervised", true)
			code, err := cfg.Runner.Child(ctx, d.Exec, append(d.Env, EnvSupervised+"=1"))
			switch {
			case err != nil:
				return fmt.Errorf("update: run %s: %w", d.Exec, err)
			case ctx.Err() != nil:
				return nil
			case code == RestartExitCode:
				logger.Info("update_restart_supervised", "from", d.Exec)
			case code != 0 && d.Trial != "":
				// The next Launch rolls the trial back.
				logger.Warn("update_trial_failed", "version", d.Trial, "exit_code", code)
			case code != 0:
				return fmt.Errorf("update: %s exited with code %d", d.Exec, code)
			default:
				return nil // it stopped by itself
			}
		}
		t := now()
		restarts = append(slices.DeleteFunc(restarts, func(r time.Time) bool { return t.Sub(r) >= time.Hour }), t)
		if len(restarts) > limit {
			return fmt.Errorf("update: %d restarts within an hour: giving up to the service manager", len(restarts))
		}
	}
}

// ExecRunner is the real [Runner]: Run is the service's loop, children are
// processes sharing this one's standard output and error.
type ExecRunner struct {
	// Run is the service's loop, run by Self.
	Run func(ctx context.Context) error
	// Args are the children's arguments (after the program name).
	Args []string
	// StopTimeout is how long a child may take to stop once asked before
	// it is killed; zero means a minute.
	StopTimeout time.Duration
}

// Self runs r.Run.
func (r ExecRunner) Self(ctx context.Context) error { return r.Run(ctx) }

// Child starts path, waits for it, and on ctx's end closes its standard
// input (its signal to drain and stop), killing it after StopTimeout.
func (r ExecRunner) Child(ctx context.Context, path string, env []string) (int, error) {
	cmd := exec.Command(path, r.Args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, os.Stdout, os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-ctx.Done():
		stdin.Close()
		stop := r.StopTimeout
		if stop <= 0 {
			stop = time.Minute
		}
		t := time.NewTimer(stop)
		select {
		case werr = <-done:
		case <-t.C:
			_ = cmd.Process.Kill() // it may have exited meanwhile: Wait tells
			werr = <-done
		}
		t.Stop()
	}
	stdin.Close()
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return 0, werr
	}
	return cmd.ProcessState.ExitCode(), nil
}

// StopOnEOF returns a context that ends with ctx or when r (a supervised
// binary's standard input) reaches end of file or fails: the supervisor
// closed it, or died. The goroutine reading r ends when r does.
func StopOnEOF(ctx context.Context, r io.Reader) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		_, _ = io.Copy(io.Discard, r)
		cancel()
	}()
	return ctx, cancel
}
