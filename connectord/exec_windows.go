//go:build windows

package main

import "errors"

// execBinary is not available on Windows: a service cannot replace its
// own process. Self-update is Linux-only; update Windows hosts with the
// installer.
func execBinary(string, []string) error {
	return errors.New("self-update is not supported on Windows: update with the installer")
}
