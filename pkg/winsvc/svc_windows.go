//go:build windows

package winsvc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// Run runs fn under the Windows service manager when it started this
// process, and in the foreground with ctx otherwise. Under the service
// manager, fn's context is cancelled on Stop or Shutdown (or when ctx
// ends) and Run returns once fn has returned; a non-nil error from fn is
// reported to the service manager as a service-specific exit code 1, so
// the recovery actions set by Install restart it.
func Run(ctx context.Context, name string, fn func(ctx context.Context) error) error {
	if name == "" {
		return fmt.Errorf("run service: %w", ErrNoName)
	}
	isService, err := svc.IsWindowsService()
	if err != nil {
		return fmt.Errorf("run service %q: detect service manager: %w", name, err)
	}
	if !isService {
		return fn(ctx)
	}
	h := &handler{ctx: ctx, fn: fn}
	if err := svc.Run(name, h); err != nil {
		return fmt.Errorf("run service %q: %w", name, err)
	}
	return h.err
}

// handler adapts fn to svc.Handler.
type handler struct {
	ctx context.Context
	fn  func(ctx context.Context) error
	err error // fn's result; read by Run after svc.Run returns
}

// Execute implements svc.Handler: it starts fn, reports Running, and
// cancels fn's context on Stop or Shutdown.
func (h *handler) Execute(_ []string, reqs <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.fn(ctx) }()
	const accepts = svc.AcceptStop | svc.AcceptShutdown
	status <- svc.Status{State: svc.Running, Accepts: accepts}
	for {
		select {
		case err := <-done:
			return h.finish(err, status)
		case req := <-reqs:
			switch req.Cmd {
			case svc.Interrogate:
				status <- req.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending}
				cancel()
				return h.finish(<-done, status)
			}
		}
	}
}

// finish records fn's result and maps it to the service exit code.
func (h *handler) finish(err error, status chan<- svc.Status) (bool, uint32) {
	h.err = err
	status <- svc.Status{State: svc.StopPending}
	if err != nil && !errors.Is(err, context.Canceled) {
		return true, 1
	}
	h.err = nil
	return false, 0
}

// Install registers cfg as an automatically started service that the
// service manager restarts after a failure. It refuses to replace an
// installed service ([ErrExists]); it must run as an administrator.
func Install(cfg Config) error {
	if cfg.Name == "" {
		return fmt.Errorf("install service: %w", ErrNoName)
	}
	exe, err := executable(cfg.Exe)
	if err != nil {
		return fmt.Errorf("install service %q: %w", cfg.Name, err)
	}
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("install service %q: connect to the service manager: %w", cfg.Name, err)
	}
	defer m.Disconnect()
	if s, err := m.OpenService(cfg.Name); err == nil {
		s.Close()
		return fmt.Errorf("install service %q: %w", cfg.Name, ErrExists)
	}
	display := cfg.DisplayName
	if display == "" {
		display = cfg.Name
	}
	s, err := m.CreateService(cfg.Name, exe, mgr.Config{
		StartType:        mgr.StartAutomatic,
		DisplayName:      display,
		Description:      cfg.Description,
		ServiceStartName: cfg.Account,
		Password:         cfg.Password,
		SidType:          windows.SERVICE_SID_TYPE_UNRESTRICTED,
	}, cfg.Args...)
	if err != nil {
		return fmt.Errorf("install service %q: %w", cfg.Name, err)
	}
	defer s.Close()
	if d := cfg.restartDelay(); d > 0 {
		actions := []mgr.RecoveryAction{{Type: mgr.ServiceRestart, Delay: d}, {Type: mgr.ServiceRestart, Delay: d}, {Type: mgr.ServiceRestart, Delay: d}}
		if err := s.SetRecoveryActions(actions, uint32((24 * time.Hour).Seconds())); err != nil {
			_ = s.Delete()
			return fmt.Errorf("install service %q: set recovery actions: %w", cfg.Name, err)
		}
	}
	return nil
}

// Uninstall stops the named service if it runs and removes it. It returns
// [ErrNotInstalled] when there is no such service; it must run as an
// administrator.
func Uninstall(name string) error {
	if name == "" {
		return fmt.Errorf("uninstall service: %w", ErrNoName)
	}
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("uninstall service %q: connect to the service manager: %w", name, err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil {
		if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
			return fmt.Errorf("uninstall service %q: %w", name, ErrNotInstalled)
		}
		return fmt.Errorf("uninstall service %q: %w", name, err)
	}
	defer s.Close()
	if st, err := s.Query(); err == nil && st.State != svc.Stopped {
		// best effort: Delete marks the service for removal either way,
		// and the service manager removes it once it has stopped
		_, _ = s.Control(svc.Stop)
	}
	if err := s.Delete(); err != nil {
		return fmt.Errorf("uninstall service %q: %w", name, err)
	}
	return nil
}

// executable returns path made absolute, or the running executable.
func executable(path string) (string, error) {
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("find executable: %w", err)
		}
		path = exe
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("executable %q: %w", path, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("executable: %w", err)
	}
	return abs, nil
}
