//go:build unix

package demo

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/postern/postern/pkg/access"
	"github.com/postern/postern/pkg/harness"
)

// TestRun starts the demo in process with and without sign-in: the banner
// lists, for every node, the app and its passthrough copy and the admin
// address, always the CA hint; the passthrough copy serves through the
// printed URL with the printed CA; cancelling (Ctrl-C) returns nil.
func TestRun(t *testing.T) {
	for _, signIn := range []bool{true, false} {
		t.Run(fmt.Sprintf("sign-in=%v", signIn), func(t *testing.T) {
			var logs, out harness.SyncBuffer
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			ready := make(chan Info, 1)
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, Config{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", SignIn: signIn, Out: &out,
					Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Ready: func(i Info) { ready <- i }})
			}()
			var info Info
			select {
			case info = <-ready:
			case err := <-done:
				t.Fatalf("Run returned before the banner: %v\n%s", err, logs.String())
			}
			banner := out.String()
			for i := range info.AppURLs {
				for _, want := range []string{info.AppURLs[i], info.OpenURLs[i], "admin " + info.Admins[i]} {
					if !strings.Contains(banner, want) {
						t.Errorf("banner lacks %q:\n%s", want, banner)
					}
				}
			}
			if !strings.Contains(banner, "passthrough copy:") || !strings.Contains(banner, "must trust the demo CA "+info.CAPath) {
				t.Errorf("banner lacks the passthrough copy or the CA hint:\n%s", banner)
			}
			if got := strings.Contains(banner, "sign in as alice"); got != signIn {
				t.Errorf("banner names the test users: got %v, want %v:\n%s", got, signIn, banner)
			}
			if signIn && (info.IdPURL == "" || !strings.Contains(banner, info.IdPURL)) {
				t.Errorf("banner lacks the development IdP URL %q:\n%s", info.IdPURL, banner)
			}
			if !strings.Contains(banner, "How mesh-eu-west-1 routes the app") {
				t.Errorf("banner lacks the route explanation:\n%s", banner)
			}
			c := clientWithCA(t, info.CAPath)
			resp, err := c.Get(strings.TrimSuffix(info.OpenURLs[1], "/") + "/hello")
			if err != nil {
				t.Fatalf("passthrough copy through the second node: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("passthrough copy: got %d, want 200", resp.StatusCode)
			}
			if signIn {
				checkBearerAndTCP(t, c, info, banner)
			}
			c.CloseIdleConnections()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run after cancel: got %v, want nil", err)
			}
			if _, err := os.Stat(info.Dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("state directory %s left behind (%v)", info.Dir, err)
			}
			if err := checkJSONLog(logs.String()); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestTaskDemo runs the README's first command, "go tool -modfile=tools/go.mod
// task demo", as a person would (its own process group, as a terminal runs
// it), waits for the URLs, then sends Ctrl-C's SIGINT to the whole group:
// everything exits with status 0, no "task: Failed" line; the log on
// standard error is JSON only, with no repeated key; the banner came out
// in one piece.
func TestTaskDemo(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "tool", "-modfile=tools/go.mod", "task", "demo", "--", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	cmd.Dir = root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var stderr harness.SyncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	var out harness.SyncBuffer
	bannerDone := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stdout)
		seen := false
		for sc.Scan() {
			out.Write(append(sc.Bytes(), '\n'))
			if !seen && strings.HasPrefix(sc.Text(), "* takes requests") {
				seen = true
				close(bannerDone)
			}
		}
		if !seen {
			close(bannerDone)
		}
	}()
	select {
	case <-bannerDone:
	case <-t.Context().Done():
		t.Fatalf("no banner:\n%s\n%s", out.String(), stderr.String())
	}
	if !strings.Contains(out.String(), "Postern demo is running") {
		t.Fatalf("the demo ended without its banner:\nstdout:\n%s\nstderr:\n%s", out.String(), stderr.String())
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-copied
	err = cmd.Wait()
	all := out.String() + stderr.String()
	if err != nil || strings.Contains(all, "task: Failed") {
		t.Fatalf("after Ctrl-C: got %v, want exit status 0 and no task failure line\nstdout:\n%s\nstderr:\n%s", err, out.String(), stderr.String())
	}
	// The banner is one block: from its first line to the route table, no
	// other line came between (task's own lines go before it).
	banner := out.String()
	start := strings.Index(banner, "\nPostern demo is running")
	end := strings.Index(banner, "* takes requests")
	if start < 0 || end < start || strings.Contains(banner[start:end], `{"time"`) {
		t.Errorf("banner not in one piece:\n%s", banner)
	}
	var logLines []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(line, "task: ") { // task's own echo of the command
			continue
		}
		logLines = append(logLines, line)
	}
	if err := checkJSONLog(strings.Join(logLines, "\n")); err != nil {
		t.Error(err)
	}
	if !strings.Contains(stderr.String(), `"msg":"mesh_node_started"`) {
		t.Errorf("standard error lacks the nodes' JSON log:\n%s", stderr.String())
	}
}

// checkJSONLog returns an error naming every line of log that is not one
// JSON object or repeats a key (at any depth).
func checkJSONLog(log string) error {
	var bad []string
	for i, line := range strings.Split(log, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if err := checkJSONObject(line); err != nil {
			bad = append(bad, fmt.Sprintf("line %d: %v: %s", i+1, err, line))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("log lines that are not clean JSON:\n%s", strings.Join(bad, "\n"))
	}
	return nil
}

// checkJSONObject checks that s is exactly one JSON object whose objects
// repeat no key.
func checkJSONObject(s string) error {
	dec := json.NewDecoder(strings.NewReader(s))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return fmt.Errorf("not a JSON object")
	}
	if err := checkObject(dec); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("more than one JSON value")
	}
	return nil
}

// checkObject reads the rest of an object whose '{' was read.
func checkObject(dec *json.Decoder) error {
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string)
		if seen[key] {
			return fmt.Errorf("key %q repeated", key)
		}
		seen[key] = true
		if err := checkValue(dec); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

func checkValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return checkObject(dec)
	case json.Delim('['):
		for dec.More() {
			if err := checkValue(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
		return err
	}
	return nil
}

func TestCheckJSONLog(t *testing.T) {
	tests := []struct {
		log  string
		want string // "" = clean
	}{
		{`{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}`, ""},
		{`{"a":1,"a":2}`, `key "a" repeated`},
		{`{"a":{"b":1,"b":2}}`, `key "b" repeated`},
		{`{"a":[{"b":1,"b":2}]}`, `key "b" repeated`},
		{`2026/12/06 05:29:12 INFO registered route endpoint=/authorize`, "not a JSON object"},
		{`{"a":1}{"b":2}`, "more than one JSON value"},
		{`[1]`, "not a JSON object"},
	}
	for _, tt := range tests {
		err := checkJSONLog(tt.log)
		if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.log, err, tt.want)
		}
	}
}

// TestWaitQuiet: the wait ends once the log has been quiet long enough,
// and never later than max while something keeps writing.
func TestWaitQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sink bytes.Buffer
		q := NewQuietWriter(&sink, nil)
		start := time.Now()
		q.Write([]byte("x\n"))
		go func() { // a line every 100ms for 1s
			for range 10 {
				time.Sleep(100 * time.Millisecond)
				q.Write([]byte("y\n"))
			}
		}()
		q.WaitQuiet(t.Context(), 300*time.Millisecond, 5*time.Second)
		if got := time.Since(start); got != 1300*time.Millisecond {
			t.Errorf("quiet after the writes: waited %v, want 1.3s (1s of lines, then 300ms quiet)", got)
		}
		stop := make(chan struct{})
		go func() { // a line every 100ms until stopped
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
					q.Write([]byte("z\n"))
				}
			}
		}()
		q.Write([]byte("z\n"))
		start = time.Now()
		q.WaitQuiet(t.Context(), 300*time.Millisecond, 2*time.Second)
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("never quiet: waited %v, want the 2s bound", got)
		}
		close(stop)
	})
}

func clientWithCA(tb testing.TB, caPath string) *http.Client {
	tb.Helper()
	pem, err := os.ReadFile(caPath)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		tb.Fatal("the demo CA file holds no certificate")
	}
	// *.localhost is loopback, as browsers resolve it.
	d := &net.Dialer{}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
		}}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func TestAdminAddr(t *testing.T) {
	for _, tt := range []struct {
		first string
		i     int
		want  string // "" = an error; "free" = any free loopback port
	}{
		{"127.0.0.1:7701", 0, "127.0.0.1:7701"},
		{"127.0.0.1:7701", 1, "127.0.0.1:7702"},
		{"[::1]:7701", 1, "[::1]:7702"},
		{"127.0.0.1:0", 1, "free"},
		{"", 0, "free"},
		{"0.0.0.0:7701", 0, ""},
		{"10.0.0.1:7701", 0, ""},
		{"localhost:7701", 0, ""},
		{"127.0.0.1:65535", 1, ""},
	} {
		got, err := adminAddr(tt.first, tt.i)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("adminAddr(%q, %d): got %q, want an error", tt.first, tt.i, got)
		case tt.want == "free" && (err != nil || !strings.HasPrefix(got, "127.0.0.1:") && !strings.HasPrefix(got, "[::1]:")):
			t.Errorf("adminAddr(%q, %d): got %q, %v, want a free loopback port", tt.first, tt.i, got, err)
		case tt.want != "" && tt.want != "free" && got != tt.want:
			t.Errorf("adminAddr(%q, %d): got %q, %v, want %q", tt.first, tt.i, got, err, tt.want)
		}
	}
}

// checkBearerAndTCP follows the banner's bearer and TCP lines: the
// daemon's token reaches the records API as an application, and the echo
// app echoes through connectord access's client.
func checkBearerAndTCP(t *testing.T, c *http.Client, info Info, banner string) {
	t.Helper()
	for _, want := range []string{info.TokenPath, info.APIURL + "headers", "access tcp --app " + info.EchoURL} {
		if info.TokenPath == "" || !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	tok, err := os.ReadFile(info.TokenPath)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), "GET", info.APIURL+"headers", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+string(tok))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("records API: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got struct{ Headers http.Header }
	json.Unmarshal(body, &got)
	if resp.StatusCode != 200 || got.Headers.Get("X-Postern-Principal-Type") != "app" {
		t.Errorf("records API with the daemon's token: got %d:\n%s", resp.StatusCode, body)
	}
	t1 := c.Transport.(*http.Transport).Clone()
	t1.ForceAttemptHTTP2 = false
	t1.TLSClientConfig.NextProtos = []string{"http/1.1"}
	ac, err := access.New(access.Config{AppURL: info.EchoURL, Token: string(tok), CacheDir: t.TempDir(), HTTPClient: &http.Client{Transport: t1}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ac.Dial(t.Context())
	if err != nil {
		t.Fatalf("echo app: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	echoed := make([]byte, 4)
	if _, err := io.ReadFull(conn, echoed); err != nil || string(echoed) != "ping" {
		t.Errorf("echo app: got %q, %v", echoed, err)
	}
}
