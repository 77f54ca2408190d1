//go:build !windows

package winsvc

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestInstallUninstallUnsupported(t *testing.T) {
	tests := []struct {
		name string
		call func() error
	}{
		{"install", func() error { return Install(Config{Name: "postern-test", Args: []string{"service", "run"}}) }},
		{"uninstall", func() error { return Uninstall("postern-test") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrUnsupported) {
				t.Errorf("got %v, want %v", err, ErrUnsupported)
			}
		})
	}
}

func TestRunForeground(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		svcName string
		ret     error
		want    error
		called  bool
	}{
		{"ok", "postern-test", nil, nil, true},
		{"error passed through", "postern-test", boom, boom, true},
		{"no name", "", nil, ErrNoName, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			called := false
			err := Run(ctx, tt.svcName, func(got context.Context) error {
				called = true
				if got != ctx {
					t.Errorf("got context %v, want the caller's", got)
				}
				return tt.ret
			})
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			if called != tt.called {
				t.Errorf("got called=%v, want %v", called, tt.called)
			}
		})
	}
}

func TestConfigRestartDelay(t *testing.T) {
	tests := []struct {
		in, want time.Duration
	}{{0, 5 * time.Second}, {time.Second, time.Second}, {-1, -1}}
	for _, tt := range tests {
		if got := (Config{RestartDelay: tt.in}).restartDelay(); got != tt.want {
			t.Errorf("RestartDelay %v: got %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestCommand(t *testing.T) {
	var got []string
	run := func(ctx context.Context, args []string) error { got = args; return nil }
	cfg := Config{Name: "postern-test"}
	if err := Command(t.Context(), []string{"run", "--x", "1"}, cfg, run); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "--x" || got[1] != "1" {
		t.Fatalf("run flags: got %v, want [--x 1]", got)
	}
	for _, bad := range [][]string{nil, {"bogus"}} {
		if err := Command(t.Context(), bad, cfg, run); err == nil {
			t.Errorf("%v: got nil, want an error", bad)
		}
	}
}
