//go:build !unix

package tracing_test

import "time"

// processCPU is zero where getrusage is missing: cpu-ns/op reads 0.
func processCPU() time.Duration { return 0 }
