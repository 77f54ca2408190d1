// Package access is the user's side of a TCP app (connectord access): it
// carries each local connection — accepted on a loopback listener, or the
// process's standard input and output for ssh's ProxyCommand — to the mesh
// over one WebSocket on the app's /.postern/tcp, authenticated with a
// bearer token: one it is given (an Entra access token, a workload token),
// or the app token of a person's browser sign-in, obtained through a
// loopback redirect as "az login" does and cached on disk (0600).
//
// It sits before the mesh edge on a TCP app's request path: client ->
// mesh node (pkg/edge: bearer check, policy) -> tunnel -> connector
// (pkg/egress: allow-list) -> target. It links no session-signing, OIDC
// or gossip code (a connector host may run it; pkg/deptest checks): the
// tokens it carries are opaque to it.
package access

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/postern/postern/pkg/splice"
)

// Reserved paths and headers of the mesh edge that the client uses; they
// match pkg/edge and pkg/catalog (a test keeps them in step).
const (
	// TCPPath is where a TCP app's streams open.
	TCPPath = "/.postern/tcp"
	// LoginPath starts a browser sign-in for a command-line client.
	LoginPath = "/.postern/cli-login"
	// BindingHeader carries the nonce of a browser sign-in's binding.
	BindingHeader = "X-Postern-Binding"
)

// maxMessage bounds one WebSocket message from the mesh.
const maxMessage = 1 << 20

// Errors.
var (
	// ErrRefused means the mesh refused the stream; the error's text is
	// the mesh's one-line reason.
	ErrRefused = errors.New("the mesh refused the stream")
	// ErrSignIn means the browser sign-in did not complete.
	ErrSignIn = errors.New("sign-in failed")
)

// Config configures a Client.
type Config struct {
	// AppURL is the TCP app's external URL, such as
	// https://ssh.apps.example.com. Required.
	AppURL string
	// Token is a bearer token to present (an Entra access token for the
	// app's API, a workload token); empty means a person's sign-in: the
	// cached one, else a new one in the browser.
	Token string
	// CacheDir holds cached sign-ins, one 0600 file per app host; empty
	// means the "postern" directory under os.UserCacheDir.
	CacheDir string
	// OpenBrowser opens a URL for the person to sign in; nil means only
	// printing it to Prompt.
	OpenBrowser func(url string) error
	// Prompt receives messages for the person (the URL to open); nil
	// discards them.
	Prompt io.Writer
	// HTTPClient dials the mesh; nil means http.DefaultClient. Its
	// transport must speak HTTP/1.1 (WebSocket).
	HTTPClient *http.Client
	// SignInTimeout bounds the wait for a browser sign-in; zero means 5m.
	SignInTimeout time.Duration
	// Logger receives one line per stream; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Client opens streams to one TCP app. It is safe for concurrent use.
type Client struct {
	cfg    Config
	app    *url.URL
	log    *slog.Logger
	client *http.Client

	mu    sync.Mutex // guards the following; held during a sign-in
	cred  *credential
	login chan struct{} // closed when the sign-in in progress ends
}

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.AppURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		if err == nil && u.Scheme == "http" && isLoopbackHost(u.Hostname()) {
			err = nil // plain HTTP to a local mesh, for development
		} else {
			return nil, fmt.Errorf("access: app URL %q: want https://host[:port]", cfg.AppURL)
		}
	}
	u.Path = ""
	if cfg.SignInTimeout == 0 {
		cfg.SignInTimeout = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Prompt == nil {
		cfg.Prompt = io.Discard
	}
	c := &Client{cfg: cfg, app: u, log: cfg.Logger, client: cfg.HTTPClient}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.client == nil {
		c.client = http.DefaultClient
	}
	return c, nil
}

func isLoopbackHost(h string) bool {
	return h == "localhost" || strings.HasSuffix(h, ".localhost") || h == "127.0.0.1" || h == "::1"
}

// Dial opens one stream to the app's target. Without a configured token
// it uses the cached sign-in, signing in (once) when there is none or the
// mesh refuses it.
func (c *Client) Dial(ctx context.Context) (net.Conn, error) {
	if c.cfg.Token != "" {
		return c.dial(ctx, c.cfg.Token, "")
	}
	for attempt := 0; ; attempt++ {
		cred, err := c.credential(ctx)
		if err != nil {
			return nil, err
		}
		conn, err := c.dial(ctx, cred.Token, cred.Nonce)
		var re *RefusedError
		if err != nil && errors.As(err, &re) && re.Status == http.StatusUnauthorized && attempt == 0 {
			c.forget(cred) // expired or revoked: sign in again
			continue
		}
		return conn, err
	}
}

// RefusedError is the mesh's refusal of a stream.
type RefusedError struct {
	// Status is the HTTP status of the refusal.
	Status int
	// Reason is the mesh's one-line reason.
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%v: %d %s", ErrRefused, e.Status, e.Reason)
}

// Unwrap returns ErrRefused.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// dial opens the WebSocket with token (and the binding nonce of a sign-in).
func (c *Client) dial(ctx context.Context, token, nonce string) (net.Conn, error) {
	h := http.Header{"Authorization": {"Bearer " + token}}
	if nonce != "" {
		h.Set(BindingHeader, nonce)
	}
	ws := *c.app
	ws.Scheme = map[string]string{"https": "wss", "http": "ws"}[c.app.Scheme]
	ws.Path = TCPPath
	conn, resp, err := websocket.Dial(ctx, ws.String(), &websocket.DialOptions{HTTPClient: c.client, HTTPHeader: h,
		CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, &RefusedError{Status: resp.StatusCode, Reason: reasonOf(resp)}
		}
		return nil, fmt.Errorf("access: open stream: %w", err)
	}
	conn.SetReadLimit(maxMessage)
	return websocket.NetConn(context.WithoutCancel(ctx), conn, websocket.MessageBinary), nil
}

// reasonOf reads the mesh's one-line plain-text reason from a refusal.
func reasonOf(resp *http.Response) string {
	if resp.Body == nil {
		return http.StatusText(resp.StatusCode)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if line == "" {
		return http.StatusText(resp.StatusCode)
	}
	return line
}

// Serve accepts connections on l and carries each over its own stream
// until ctx ends; it then closes l and every stream and returns nil. A
// connection whose stream cannot be opened is closed, and the reason
// logged.
func (c *Client) Serve(ctx context.Context, l net.Listener) error {
	var wg sync.WaitGroup
	var open splice.Set
	stop := context.AfterFunc(ctx, func() {
		l.Close()
		open.CloseAll()
	})
	defer stop()
	defer wg.Wait()
	for {
		local, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("access: accept: %w", err)
		}
		open.Add(local)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer open.Remove(local)
			c.carry(ctx, local)
		}()
	}
}

// carry joins local to a new stream.
func (c *Client) carry(ctx context.Context, local net.Conn) {
	start := c.cfg.Now()
	remote, err := c.Dial(ctx)
	if err != nil {
		local.Close()
		c.log.Warn("stream_refused", "local", local.RemoteAddr().String(), "error", err)
		fmt.Fprintf(c.cfg.Prompt, "connectord access: %v\n", err)
		return
	}
	up, down := splice.Pipe(local, remote)
	c.log.Info("stream", "local", local.RemoteAddr().String(), "bytes_up", up, "bytes_down", down,
		"duration_ms", c.cfg.Now().Sub(start).Milliseconds())
}

// Stdio carries in and out (standard input and output, for ssh's
// ProxyCommand) over one stream until either side ends.
func (c *Client) Stdio(ctx context.Context, in io.ReadCloser, out io.WriteCloser) error {
	remote, err := c.Dial(ctx)
	if err != nil {
		return err
	}
	splice.Pipe(stdio{in, out}, remote)
	return nil
}

// stdio is standard input and output as one stream.
type stdio struct {
	io.ReadCloser
	w io.WriteCloser
}

func (s stdio) Write(p []byte) (int, error) { return s.w.Write(p) }

func (s stdio) Close() error {
	s.ReadCloser.Close()
	return s.w.Close()
}
