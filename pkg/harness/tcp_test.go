package harness

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/pkg/access"
	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/revoke"
	"github.com/postern/postern/pkg/testkit"
)

// sshServer is a real SSH server (golang.org/x/crypto/ssh) on loopback:
// user "ops" with password "pw", and "exec" answers "ran: <command>".
type sshServer struct {
	l  net.Listener
	wg sync.WaitGroup
}

func startSSHServer(tb testing.TB) *sshServer {
	tb.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PasswordCallback: func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
		if c.User() == "ops" && string(pw) == "pw" {
			return nil, nil
		}
		return nil, errors.New("denied")
	}}
	cfg.AddHostKey(signer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &sshServer{l: l}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c, cfg)
			}()
		}
	}()
	tb.Cleanup(func() {
		l.Close()
		s.wg.Wait()
	})
	return s
}

func (s *sshServer) serve(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	conn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, in, err := nc.Accept()
		if err != nil {
			return
		}
		for req := range in {
			if req.Type != "exec" {
				req.Reply(false, nil)
				continue
			}
			var cmd struct{ Command string }
			ssh.Unmarshal(req.Payload, &cmd)
			req.Reply(true, nil)
			fmt.Fprintf(ch, "ran: %s\n", cmd.Command)
			ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
			ch.Close()
		}
	}
}

var continueLink = regexp.MustCompile(`id="continue" href="([^"]+)"`)

// browserSignIn is an access.Config.OpenBrowser that signs user in as a
// browser would and follows the confirmation page's link to the client's
// loopback listener.
func browserSignIn(tb testing.TB, h *Harness, user string) func(string) error {
	return func(u string) error {
		go func() {
			_, body, err := Navigate(tb.Context(), h.Browser(), u, user, "")
			if err != nil {
				tb.Errorf("sign-in: %v", err)
				return
			}
			m := continueLink.FindStringSubmatch(body)
			if m == nil {
				tb.Errorf("no confirmation link on the page: %s", body)
				return
			}
			link := html.UnescapeString(m[1])
			if !strings.HasPrefix(link, "http://127.0.0.1:") {
				tb.Errorf("the confirmation links to %s, want the loopback listener", link)
				return
			}
			resp, err := http.Get(link)
			if err != nil {
				tb.Errorf("loopback callback: %v", err)
				return
			}
			resp.Body.Close()
		}()
		return nil
	}
}

func accessClient(tb testing.TB, h *Harness, mesh int, app, token string, open func(string) error) *access.Client {
	tb.Helper()
	c, err := access.New(access.Config{AppURL: h.URLFor(mesh, app+".localhost"), Token: token, CacheDir: tb.TempDir(),
		OpenBrowser: open, HTTPClient: h.StreamClient(mesh)})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// TestTCPApps: SSH through the loopback listener after a browser sign-in,
// a 64 MiB duplex transfer, parallel streams, and the refusals — the
// policy's, the connector allow-list's, and a missing token's.
func TestTCPApps(t *testing.T) {
	sshd := startSSHServer(t)
	transfer, err := StartTCPTarget(TargetTransfer)
	if err != nil {
		t.Fatal(err)
	}
	defer transfer.Close()
	echo, err := StartTCPTarget(TargetEcho)
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	_, port, _ := net.SplitHostPort(echo.Addr())
	apps := TCPApp("ssh", sshd.l.Addr().String()) + TCPApp("blob", transfer.Addr()) + TCPApp("echo", echo.Addr()) +
		TCPApp("forbidden", "127.0.0.2:"+port)
	logs := &SyncBuffer{}
	audit := &SyncBuffer{}
	h := start(t, Options{Auth: true, ExtraCatalog: apps, Logger: slog.New(slog.NewJSONHandler(logs, nil)), Audit: audit})
	// auditOf returns the audit record of app with the given decision
	// and reason, nil if there is none.
	auditOf := func(app, decision, reason string) map[string]any {
		for _, r := range testkit.Records(t, audit.String(), nil) {
			if r["app"] == app && r["decision"] == decision && r["reason"] == reason {
				return r
			}
		}
		return nil
	}
	daemon, err := h.ClientCredentials(t.Context(), DaemonClientID, DaemonSecret, APIIdentifier+"/.default")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ssh after a browser sign-in", func(t *testing.T) {
		c := accessClient(t, h, 0, "ssh", "", browserSignIn(t, h, "bob"))
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		served := make(chan error, 1)
		go func() { served <- c.Serve(ctx, l) }()
		for i, cmd := range []string{"uptime", "whoami"} { // the second reuses the cached sign-in
			client, err := ssh.Dial("tcp", l.Addr().String(), &ssh.ClientConfig{User: "ops", Auth: []ssh.AuthMethod{ssh.Password("pw")},
				HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second})
			if err != nil {
				t.Fatalf("ssh dial %d: %v", i, err)
			}
			sess, err := client.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			out, err := sess.Output(cmd)
			client.Close()
			if err != nil || string(out) != "ran: "+cmd+"\n" {
				t.Fatalf("ssh %s: got %q, %v", cmd, out, err)
			}
		}
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	t.Run("ssh ProxyCommand over standard input and output", func(t *testing.T) {
		c := accessClient(t, h, 0, "ssh", daemon, nil)
		user, proxy := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- c.Stdio(t.Context(), proxy, proxy) }()
		conn, chans, reqs, err := ssh.NewClientConn(user, "ssh", &ssh.ClientConfig{User: "ops", Auth: []ssh.AuthMethod{ssh.Password("pw")},
			HostKeyCallback: ssh.InsecureIgnoreHostKey()})
		if err != nil {
			t.Fatal(err)
		}
		client := ssh.NewClient(conn, chans, reqs)
		sess, err := client.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := sess.Output("hostname")
		client.Close()
		if err != nil || string(out) != "ran: hostname\n" {
			t.Fatalf("ssh over stdio: got %q, %v", out, err)
		}
		if err := <-done; err != nil {
			t.Errorf("stdio: %v", err)
		}
	})

	t.Run("64 MiB each way", func(t *testing.T) {
		conn, err := accessClient(t, h, 0, "blob", daemon, nil).Dial(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := TransferCheck(conn, 64<<20); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		// One access line per connection (user, app, bytes each way,
		// duration) at the mesh, one tcp_stream line at the connector.
		var access, stream map[string]any
		if err := WaitFor(t.Context(), 2*time.Minute, func() bool {
			access = logLine(t, logs.String(), "access", "app", "blob")
			if access == nil {
				return false
			}
			stream = logLine(t, logs.String(), "tcp_stream", "request_id", access["request_id"])
			// The audit record is written beside the access line, not
			// before it: wait for it too (a loaded run read it too soon).
			return stream != nil && auditOf("blob", "allow", "policy") != nil
		}); err != nil {
			t.Fatalf("no access and tcp_stream lines and audit record for the stream: %v %v", access, stream)
		}
		const n = 64 << 20
		for _, l := range []map[string]any{access, stream} {
			up, _ := l["bytes_up"].(float64)
			down, _ := l["bytes_down"].(float64)
			if up < n || down < n {
				t.Errorf("%s line: bytes_up %v, bytes_down %v, want at least %d each", l["msg"], up, down, n)
			}
		}
		if d, _ := access["duration_ms"].(float64); access["user"] == "" || access["user"] == nil || d <= 0 || access["principal"] != "app" {
			t.Errorf("access line lacks the user, principal or duration: %v", access)
		}
		// The stream is audited like a web request, when it ends.
		if r := auditOf("blob", "allow", "policy"); r == nil || r["request_id"] != access["request_id"] ||
			r["principal"] != "app" || r["auth"] != "bearer" || r["user"] != access["user"] {
			t.Errorf("audit record of the stream: %v, want allow for the daemon's bearer token (access line %v)", r, access)
		}
	})

	t.Run("parallel streams", func(t *testing.T) {
		c := accessClient(t, h, 0, "echo", daemon, nil)
		const streams = 48
		errs := make(chan error, streams)
		for i := 0; i < streams; i++ {
			go func() {
				conn, err := c.Dial(t.Context())
				if err != nil {
					errs <- err
					return
				}
				defer conn.Close()
				msg := []byte(strings.Repeat(fmt.Sprintf("stream %02d ", i), 2000))
				go conn.Write(msg)
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(conn, got); err != nil || string(got) != string(msg) {
					errs <- fmt.Errorf("stream %d: echo differs (%v)", i, err)
					return
				}
				errs <- nil
			}()
		}
		for i := 0; i < streams; i++ {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})

	refusals := []struct {
		name, app, token string
		status           int
		reason           string
	}{
		{"policy denies alice", "echo", delegatedToken(t, h, "alice"), 403, "Access denied"},
		{"allow-list denies the target", "forbidden", daemon, 502, "Destination not allowed"},
		{"no token", "echo", "", 401, ""},
		{"bad token", "echo", "nope", 401, "Invalid token"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			open := func(string) error { return errors.New("no browser in this test") }
			c := accessClient(t, h, 0, tc.app, tc.token, open)
			ctx := t.Context()  // a refusal comes back at once; no wall-clock budget on a loaded machine
			if tc.token == "" { // no sign-in: dial the WebSocket without a token
				ws := strings.Replace(h.URLFor(0, "echo.localhost"), "https:", "wss:", 1) + "/.postern/tcp"
				_, resp, err := websocket.Dial(ctx, ws, &websocket.DialOptions{HTTPClient: h.StreamClient(0)})
				if err == nil || resp == nil || resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
					t.Fatalf("WebSocket without a token: got %v, %+v, want 401 with a Bearer challenge", err, resp)
				}
				resp, err = h.StreamClient(0).Get(h.URLFor(0, "echo.localhost") + "/.postern/tcp")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 400 {
					t.Errorf("plain GET: got %d, want 400", resp.StatusCode)
				}
				return
			}
			_, err := c.Dial(ctx)
			var re *access.RefusedError
			if !errors.As(err, &re) || re.Status != tc.status || !strings.Contains(re.Reason, tc.reason) {
				t.Fatalf("got %v, want a %d refusal with %q", err, tc.status, tc.reason)
			}
		})
	}

	t.Run("refusals audited", func(t *testing.T) {
		if r := auditOf("echo", "deny", "policy"); r == nil || r["principal"] != "user" || r["auth"] != "bearer" || r["detail"] == "" {
			t.Errorf("audit record of alice's denied stream: %v", r)
		}
		if r := auditOf("echo", "deny", "bearer_refused"); r == nil || r["status"] != float64(401) || r["principal"] != nil {
			t.Errorf("audit record of a refused token: %v", r)
		}
	})

	t.Run("log lines of the schema", func(t *testing.T) {
		seen := checkLogSchema(t, logSchema(t), testkit.Records(t, logs.String(), nil))
		for _, m := range []string{"access", "tcp_stream"} {
			if !seen[m] {
				t.Errorf("no %q line in the run", m)
			}
		}
	})

	t.Run("web paths of a TCP app", func(t *testing.T) {
		resp, _ := call(t, h, h.URLFor(0, "echo.localhost")+"/", daemon)
		if resp.StatusCode != 404 {
			t.Errorf("GET / of a TCP app: got %d, want 404", resp.StatusCode)
		}
	})

	// Last: it revokes bob for the rest of the harness's life.
	t.Run("a revoked user's open stream is cut and new ones refused", func(t *testing.T) {
		bob := delegatedToken(t, h, "bob")
		conn, err := accessClient(t, h, 0, "echo", bob, nil).Dial(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		other, err := accessClient(t, h, 0, "echo", daemon, nil).Dial(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		for _, c := range []net.Conn{conn, other} {
			if err := echoOnce(c, "before"); err != nil {
				t.Fatal(err)
			}
		}
		ended := make(chan struct{})
		go func() {
			io.Copy(io.Discard, conn)
			close(ended)
		}()
		now := time.Now()
		proof, err := h.Authority.SignRevocation(revoke.User(tokenSubject(t, bob), now, now, 0))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := (&enroll.Client{BaseURL: h.Meshes()[0].URL, HTTPClient: h.APIClient()}).Revoke(t.Context(), proof); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		if err := WaitFor(t.Context(), 2*time.Minute, func() bool {
			select {
			case <-ended:
				return true
			default:
				return false
			}
		}); err != nil {
			t.Fatal("the revoked user's open stream was not cut")
		}
		_, err = accessClient(t, h, 0, "echo", bob, nil).Dial(t.Context())
		var re *access.RefusedError
		if !errors.As(err, &re) || re.Status != 401 || !strings.Contains(re.Reason, "revoked") {
			t.Errorf("a new stream of the revoked user: got %v, want a 401 refusal naming the revocation", err)
		}
		if err := echoOnce(other, "after"); err != nil { // someone else's stream lives on
			t.Errorf("the daemon's stream: %v", err)
		}
		if err := WaitFor(t.Context(), 2*time.Minute, func() bool {
			l := logLine(t, logs.String(), "access", "error", "cut: the identity was revoked")
			return l != nil && l["app"] == "echo" && l["user"] == tokenSubject(t, bob)
		}); err != nil {
			t.Error("no access line says the stream was cut by the revocation")
		}
		if m := metricsOf(t, h); !strings.Contains(m, `postern_edge_revoked_refusals_total{kind="user",where="tcp_stream"} 1`) {
			t.Errorf("metrics do not count the cut stream:\n%s", grepLines(m, "revoked_refusals"))
		}
	})
}

// logLine returns the last JSON log line of logs with message msg whose
// key equals value, or nil.
func logLine(tb testing.TB, logs, msg, key string, value any) map[string]any {
	tb.Helper()
	rs := testkit.Records(tb, logs, map[string]any{"msg": msg, key: value})
	if len(rs) == 0 {
		return nil
	}
	return rs[len(rs)-1]
}

// echoOnce writes msg to an echo stream and reads it back.
func echoOnce(c net.Conn, msg string) error {
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		return fmt.Errorf("echo of %q: got %q, %v", msg, got, err)
	}
	return nil
}

// tokenSubject returns the Postern subject ("<tid>/<oid>") of an Entra
// token, read without verification.
func tokenSubject(tb testing.TB, tok string) string {
	tb.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		tb.Fatalf("not a JWT: %.20s", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct{ Tid, Oid string }
	if err != nil || json.Unmarshal(raw, &c) != nil || c.Tid == "" || c.Oid == "" {
		tb.Fatalf("no tid and oid in the token: %v", err)
	}
	return c.Tid + "/" + c.Oid
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func delegatedToken(tb testing.TB, h *Harness, login string) string {
	tb.Helper()
	tok, err := h.IdP().DelegatedToken(login, NativeClientID, APIIdentifier+"/Records.Read")
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// TestCLISignInBinding: a command-line client's app token is accepted only
// as a bearer token with its binding nonce, never as a cookie; a
// browser's app cookie is not accepted as a bearer token.
func TestCLISignInBinding(t *testing.T) {
	h := start(t, Options{Auth: true})
	dir := t.TempDir()
	c, err := access.New(access.Config{AppURL: h.URLFor(0, APIAppHost), CacheDir: dir, OpenBrowser: browserSignIn(t, h, "bob"),
		HTTPClient: h.StreamClient(0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 1 {
		t.Fatalf("cached sign-ins: got %v, want one file", files)
	}
	if fi, err := os.Stat(files[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode: got %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	var cred struct{ Token, Nonce string }
	b, _ := os.ReadFile(files[0])
	json.Unmarshal(b, &cred)
	if cred.Token == "" || cred.Nonce == "" {
		t.Fatalf("cached sign-in: %s", b)
	}
	otherNonce := strings.Repeat("A", 43)
	for _, tc := range []struct {
		name   string
		hdr    []string
		token  string
		status int
	}{
		{"bearer with the nonce", []string{"X-Postern-Binding", cred.Nonce}, cred.Token, 200},
		{"bearer without the nonce", nil, cred.Token, 401},
		{"bearer with another nonce", []string{"X-Postern-Binding", otherNonce}, cred.Token, 401},
		{"as the app cookie", []string{"Cookie", "__Host-postern=" + cred.Token}, "", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := call(t, h, h.APIURL(0, "/headers"), tc.token, tc.hdr...)
			if resp.StatusCode != tc.status {
				t.Fatalf("got %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == 200 {
				hd := backendHeaders(t, body)
				if hd.Get("X-Postern-Binding") != "" || hd.Get("Authorization") != "" {
					t.Error("the token or its nonce reached the backend")
				}
				if hd.Get("X-Postern-Principal-Type") != "user" {
					t.Errorf("principal type: got %q, want user", hd.Get("X-Postern-Principal-Type"))
				}
			}
		})
	}
	// A browser's app cookie presented as a bearer token.
	br := h.Browser()
	navigate(t, br, h.AppURL(0, "/headers"), "bob", "")
	u, _ := url.Parse(h.AppURL(0, "/"))
	var cookie string
	for _, ck := range br.Jar.Cookies(u) {
		if ck.Name == "__Host-postern" {
			cookie = ck.Value
		}
	}
	if cookie == "" {
		t.Fatal("no app cookie after the browser's sign-in")
	}
	req, _ := http.NewRequest("GET", h.AppURL(0, "/headers"), nil)
	req.Header.Set("Authorization", "Bearer "+cookie)
	resp, err := h.MeshClient(0).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("a browser's app cookie as a bearer token: got %d, want 401", resp.StatusCode)
	}
}
