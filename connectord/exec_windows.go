//go:build windows

package main

import "errors"

// superviseUpdates: a Windows service cannot replace its process with
// another binary, so with self-update on, the installed binary stays the
// service's process and runs the staged version as a child
// (update.Supervise).
const superviseUpdates = true

// execBinary is not available on Windows (see superviseUpdates); it is
// never called there.
func execBinary(string, []string) error {
	return errors.New("exec is not available on Windows: self-update runs the staged version as a child")
}
