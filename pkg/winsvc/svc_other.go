//go:build !windows

package winsvc

import (
	"context"
	"fmt"
)

// Run runs fn in the foreground with ctx; only on Windows can a service
// manager start the process. It returns fn's error.
func Run(ctx context.Context, name string, fn func(ctx context.Context) error) error {
	if name == "" {
		return fmt.Errorf("run service: %w", ErrNoName)
	}
	return fn(ctx)
}

// Install returns ErrUnsupported: services are a Windows feature.
func Install(cfg Config) error {
	return fmt.Errorf("install service %q: %w", cfg.Name, ErrUnsupported)
}

// Uninstall returns ErrUnsupported: services are a Windows feature.
func Uninstall(name string) error {
	return fmt.Errorf("uninstall service %q: %w", name, ErrUnsupported)
}
