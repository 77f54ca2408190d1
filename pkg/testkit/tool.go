package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Tool returns the path of an external program a test runs (Pebble, the
// Lambda runtime emulator, tflint, nfpm, systemd-analyze, ...): on PATH,
// or in the bin folder of a GOPATH, where "go install" puts the Go tools
// that .ci/run pins. It fails tb when the program is missing, saying how
// to install it: a test that needs a tool never skips.
func Tool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := ToolPath(name)
	if err != nil {
		tb.Fatalf("%v: install it as CI does (bash .ci/run install-go-tools for the Go tools; .ci/run lists the Debian packages)", err)
	}
	return p
}

// ToolPath returns the path of the program name on PATH or in the bin
// folder of a GOPATH, or an error saying it is in neither.
func ToolPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", name)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s not found on PATH or in GOPATH/bin", name)
}
