package edge

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// TestTracingOffAllocatesNothing: with Config.Tracer nil, a signed-in
// request through the whole edge (authentication, policy, the proxy to a
// backend, the access log) makes no allocation for tracing. Every
// allocation of the requests is recorded (runtime.MemProfileRate 1) and
// none may have a tracing frame in its stack: the OpenTelemetry packages,
// pkg/tracing, or this package's trace.go. So that the scan is known to
// see such allocations, the same requests with tracing on must show them.
//
// The memory profile is the whole process's, and a server goroutine of an
// earlier test (with tracing on) may still be finishing a request: so the
// scan runs in a child process of this test binary that runs this test
// alone.
func TestTracingOffAllocatesNothing(t *testing.T) {
	if os.Getenv(traceOffChild) != "1" {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestTracingOffAllocatesNothing$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), traceOffChild+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestTracingOffAllocatesNothing") {
			t.Fatalf("the allocation scan in a process of its own: %v\n%s", err, out)
		}
		return
	}
	off := tracingAllocs(t, func(c Config) Config { return c })
	if len(off) > 0 {
		t.Errorf("tracing off: %d allocation sites with tracing frames, first:\n%s", len(off), off[0])
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	on := tracingAllocs(t, func(c Config) Config { c.Tracer = tp.Tracer("test"); return c })
	if len(on) == 0 {
		t.Error("tracing on: no allocation with a tracing frame seen: the scan is blind")
	}
}

// traceOffChild is set in the environment of the child process that runs
// TestTracingOffAllocatesNothing's scan.
const traceOffChild = "POSTERN_TRACE_OFF_CHILD"

// tracingAllocs serves requests through a handler built with configure
// and returns the stacks of the allocations they made that hold a
// tracing frame.
func tracingAllocs(t *testing.T, configure func(Config) Config) []string {
	serve := newServe(t, configure)
	serve() // first-use allocations (pools, connections) are not per request
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = old }()
	before := memProfile()
	for range 20 {
		serve()
	}
	// A record is published up to two collections after its allocation.
	for range 3 {
		runtime.GC()
	}
	var out []string
	for key, n := range memProfile() {
		if n > before[key] && strings.Contains(key, "\ttracing:") {
			out = append(out, key)
		}
	}
	return out
}

// memProfile returns the allocation count of every stack of the memory
// profile, keyed by its frames (one "function file:line" a line), with
// "\ttracing:" appended to each frame of tracing code.
func memProfile() map[string]int64 {
	n, _ := runtime.MemProfile(nil, true)
	recs := make([]runtime.MemProfileRecord, n+256)
	n, ok := runtime.MemProfile(recs, true)
	for !ok {
		recs = make([]runtime.MemProfileRecord, 2*n)
		n, ok = runtime.MemProfile(recs, true)
	}
	out := make(map[string]int64, n)
	for _, r := range recs[:n] {
		var b strings.Builder
		frames := runtime.CallersFrames(r.Stack())
		for {
			f, more := frames.Next()
			fmt.Fprintf(&b, "%s %s:%d", f.Function, f.File, f.Line)
			if strings.HasPrefix(f.Function, "go.opentelemetry.io/") || strings.Contains(f.Function, "/pkg/tracing.") ||
				strings.HasSuffix(f.File, "/pkg/edge/trace.go") {
				b.WriteString("\ttracing:")
			}
			b.WriteByte('\n')
			if !more {
				break
			}
		}
		out[b.String()] += r.AllocObjects
	}
	return out
}
