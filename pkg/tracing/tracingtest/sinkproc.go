package tracingtest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The out-of-process sink: the test binary started again as a collector
// stand-in, so that a benchmark of tracing's cost counts the exporter's
// CPU (encoding, the POST) in the process measured and not the
// collector's (reading and discarding the body), which in production
// runs elsewhere.

// sinkEnv, set in a process's environment, makes SinkMain serve a sink.
const sinkEnv = "POSTERN_TRACINGTEST_SINK"

// SinkHandler reads and discards an export and answers it as a
// collector does: the handler of NewSink, NewProcessSink and bench real's
// sink process (bench otlp-sink).
func SinkHandler(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/x-protobuf")
}

// SinkMain is for a test package's TestMain, called first: in a process
// NewProcessSink started it serves the sink on 127.0.0.1, writes its
// traces URL as the first line of stdout, and exits when stdin closes
// (the test process ended); in any other process it returns at once.
func SinkMain() {
	if os.Getenv(sinkEnv) != "1" {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracingtest: sink:", err)
		os.Exit(2)
	}
	fmt.Printf("http://%s/v1/traces\n", ln.Addr())
	go func() { _ = http.Serve(ln, http.HandlerFunc(SinkHandler)) }()
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// NewProcessSink starts the test binary again as a sink process (its
// TestMain must call SinkMain first) and returns the sink's traces URL;
// the process is stopped by tb's cleanup. Its CPU is not the test
// process's: getrusage(RUSAGE_SELF) and the like leave it out.
func NewProcessSink(tb testing.TB) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), sinkEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("tracingtest: sink process: %v", err)
	}
	tb.Cleanup(func() {
		stdin.Close() // the sink exits on EOF
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "http://127.0.0.1:") {
		tb.Fatalf("tracingtest: sink process printed %q (%v), want its URL (does TestMain call SinkMain?)", line, err)
	}
	return strings.TrimSpace(line)
}
