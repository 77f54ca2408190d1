package update

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/testkit"
)

// supervisedChild plays a staged connector started by Supervise (the test
// binary, staged as a release): on trial it commits, unless
// UPDATE_TEST_BROKEN names it; then it runs until its standard input
// ends, or asks for a restart (UPDATE_TEST_CHILD=restart), fails
// (UPDATE_TEST_CHILD=fail), or ignores the end of its input
// (UPDATE_TEST_CHILD=deaf).
func supervisedChild() int {
	dir := os.Getenv("UPDATE_TEST_SUPERVISE_DIR")
	trial := os.Getenv(EnvTrial)
	if trial != "" && trial == os.Getenv("UPDATE_TEST_BROKEN") {
		return 1
	}
	if trial != "" {
		if err := Commit(dir, trial); err != nil {
			fmt.Println("commit:", err)
			return 2
		}
	}
	switch os.Getenv("UPDATE_TEST_CHILD") {
	case "restart":
		return RestartExitCode
	case "fail":
		return 3
	case "deaf":
		time.Sleep(time.Hour)
	}
	ctx, cancel := StopOnEOF(context.Background(), os.Stdin)
	defer cancel()
	<-ctx.Done()
	return 0
}

// selfRunner is the installed binary's in-process service: each call runs
// the next of its steps.
type selfRunner struct {
	ExecRunner
	calls int
	steps []func(ctx context.Context) error
}

func (r *selfRunner) Self(ctx context.Context) error {
	r.calls++
	if r.calls > len(r.steps) {
		return fmt.Errorf("self run %d: no such step", r.calls)
	}
	return r.steps[r.calls-1](ctx)
}

// stageRelease stages release 1.1.0 (the test binary) in dir.
func stageRelease(t *testing.T, dir string) {
	t.Helper()
	key := newKey(t)
	u := updater(t, newRelease(t, "1.1.0", key, false), key, "1.0.0", dir)
	m, err := u.Check(t.Context())
	if err != nil || m == nil {
		t.Fatalf("check: %v, %v", m, err)
	}
	if err := u.Stage(t.Context(), m); err != nil {
		t.Fatal(err)
	}
}

// TestSuperviseUpdateAndCommit: as a Windows service does, the installed
// binary runs the service in-process; it stages 1.1.0 and asks for a
// restart; Supervise starts 1.1.0 as a child on trial, which commits; on
// the service's stop the child's standard input is closed, it stops, and
// Supervise returns.
func TestSuperviseUpdateAndCommit(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := &selfRunner{steps: []func(context.Context) error{func(context.Context) error {
		stageRelease(t, dir)
		return fmt.Errorf("connector: restart into 1.1.0: %w", ErrRestart)
	}}}
	done := make(chan error, 1)
	go func() {
		done <- Supervise(ctx, SuperviseConfig{Dir: dir, Runner: r, Env: append(os.Environ(), "UPDATE_TEST_SUPERVISE_DIR="+dir)})
	}()
	testkit.WaitFor(t, time.Minute, "1.1.0 committed by the supervised child", func() bool {
		s, err := loadState(dir)
		return err == nil && s.Current != nil && s.Current.Version == "1.1.0"
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("supervise after stop: %v", err)
	}
	if r.calls != 1 {
		t.Errorf("the in-process service ran %d times, want once", r.calls)
	}
}

// TestSuperviseRollsBackBrokenTrial: a trial child that fails is rolled
// back and the installed binary's service runs again, in-process, without
// the service manager's help; a staged version (not on trial) that fails
// is left to the service manager.
func TestSuperviseRollsBackBrokenTrial(t *testing.T) {
	dir := t.TempDir()
	env := append(os.Environ(), "UPDATE_TEST_SUPERVISE_DIR="+dir, "UPDATE_TEST_BROKEN=1.1.0")
	r := &selfRunner{steps: []func(context.Context) error{
		func(context.Context) error { stageRelease(t, dir); return ErrRestart },
		func(context.Context) error { return nil }, // back on the installed version; the service stops
	}}
	if err := Supervise(t.Context(), SuperviseConfig{Dir: dir, Runner: r, Env: env}); err != nil {
		t.Fatal(err)
	}
	s, err := loadState(dir)
	if err != nil || !slices.Contains(s.Bad, "1.1.0") || s.Trial != nil || s.Current != nil || r.calls != 2 {
		t.Fatalf("after the broken trial: state %+v (%v), in-process runs %d, want 1.1.0 bad and the installed binary run again", s, err, r.calls)
	}

	// A committed version that later fails: the error goes to the
	// service manager (whose recovery restarts the service).
	dir = t.TempDir()
	stageRelease(t, dir)
	if err := Commit(dir, "1.1.0"); err != nil {
		t.Fatal(err)
	}
	err = Supervise(t.Context(), SuperviseConfig{Dir: dir, Runner: &selfRunner{}, Env: append(os.Environ(), "UPDATE_TEST_SUPERVISE_DIR="+dir, "UPDATE_TEST_CHILD=fail")})
	if err == nil || !strings.Contains(err.Error(), "exited with code 3") {
		t.Fatalf("a committed child that fails: %v, want its exit code for the service manager", err)
	}
}

// TestSuperviseGivesUp: a binary that asks for a restart again and again
// is given up after MaxRestarts within an hour (the service manager takes
// over); restarts spread over more than an hour are not.
func TestSuperviseGivesUp(t *testing.T) {
	restart := func(context.Context) error { return ErrRestart }
	now := time.Unix(1_700_000_000, 0)
	r := &selfRunner{steps: slices.Repeat([]func(context.Context) error{restart}, 10)}
	err := Supervise(t.Context(), SuperviseConfig{Dir: t.TempDir(), Runner: r, MaxRestarts: 3, Now: func() time.Time { return now }})
	if err == nil || !strings.Contains(err.Error(), "restarts within an hour") || r.calls != 4 {
		t.Fatalf("got %v after %d runs, want giving up after the 4th", err, r.calls)
	}
	r = &selfRunner{steps: append(slices.Repeat([]func(context.Context) error{restart}, 8), func(context.Context) error { return nil })}
	err = Supervise(t.Context(), SuperviseConfig{Dir: t.TempDir(), Runner: r, MaxRestarts: 3, Now: func() time.Time { now = now.Add(21 * time.Minute); return now }})
	if err != nil || r.calls != 9 {
		t.Fatalf("spread restarts: %v after %d runs", err, r.calls)
	}
	if err := Supervise(t.Context(), SuperviseConfig{Dir: t.TempDir()}); err == nil {
		t.Error("no Runner: accepted")
	}
}

// TestExecRunnerChild: a child asking for a restart gives its code; a
// child that ignores the end of its input is killed after StopTimeout.
func TestExecRunnerChild(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), EnvSupervised+"=1", "UPDATE_TEST_CHILD=restart")
	if code, err := (ExecRunner{}).Child(t.Context(), self, env); err != nil || code != RestartExitCode {
		t.Fatalf("restart: code %d, %v", code, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	env = append(os.Environ(), EnvSupervised+"=1", "UPDATE_TEST_CHILD=deaf")
	if code, err := (ExecRunner{StopTimeout: 100 * time.Millisecond}).Child(ctx, self, env); err != nil || code == 0 {
		t.Fatalf("deaf child: code %d, %v, want killed", code, err)
	}
	if _, err := (ExecRunner{}).Child(t.Context(), "/nonexistent/connectord", nil); err == nil || errors.Is(err, ErrRestart) {
		t.Errorf("missing binary: %v", err)
	}
}
