package benchrun

import (
	"bufio"
	"io"
	"os"
	"runtime"
	"strings"
)

// Machine describes the machine and toolchain a run happened on.
type Machine struct {
	// CPU is the CPU model name, or "unknown".
	CPU string `json:"cpu"`
	// Cores is the number of logical CPUs usable by the process.
	Cores int `json:"cores"`
	// GoVersion is the Go version the bench tool was built with.
	GoVersion string `json:"go_version"`
	// GOOS is the operating system the bench tool was built for.
	GOOS string `json:"goos"`
	// GOARCH is the architecture the bench tool was built for.
	GOARCH string `json:"goarch"`
}

// DescribeMachine returns this machine's description, with the CPU model
// read from /proc/cpuinfo where there is one.
func DescribeMachine() Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), GoVersion: runtime.Version(),
		GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer func() { _ = f.Close() }()
		if name := cpuModel(f); name != "" {
			m.CPU = name
		}
	}
	return m
}

// cpuModel returns the first CPU model name in a /proc/cpuinfo listing,
// or "" if it has none.
func cpuModel(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "model name", "Model", "cpu model", "Processor":
			if v := strings.TrimSpace(val); v != "" {
				return v
			}
		}
	}
	return ""
}
