package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/pkg/wgkey"
)

// renewBefore is how long before its expiry a cached sign-in is renewed.
const renewBefore = time.Minute

// credential is a person's sign-in for one app: the app token the auth
// functions minted for this client, and the nonce whose hash binds it.
// The mesh accepts the token only together with the nonce, which never
// left this client.
type credential struct {
	App     string `json:"app"` // the app's host
	Token   string `json:"token"`
	Nonce   string `json:"nonce"`
	Expires int64  `json:"exp"` // Unix seconds, from the token
}

// credential returns a usable sign-in: the one in memory or on disk, or a
// new one from the browser. Concurrent callers wait for one sign-in.
func (c *Client) credential(ctx context.Context) (*credential, error) {
	for {
		c.mu.Lock()
		if c.cred == nil {
			c.cred = c.loadCached()
		}
		if cr := c.cred; cr != nil && c.cfg.Now().Add(renewBefore).Unix() < cr.Expires {
			c.mu.Unlock()
			return cr, nil
		}
		if wait := c.login; wait != nil { // another stream is signing in
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		c.login = done
		c.mu.Unlock()
		cr, err := c.signIn(ctx)
		c.mu.Lock()
		c.login = nil
		if err == nil {
			c.cred = cr
		}
		close(done)
		c.mu.Unlock()
		return cr, err
	}
}

// Login signs the person in with the browser now and caches the result.
func (c *Client) Login(ctx context.Context) error {
	cr, err := c.signIn(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.cred = cr
	c.mu.Unlock()
	return nil
}

// Logout forgets the cached sign-in (memory and disk).
func (c *Client) Logout() error {
	c.mu.Lock()
	c.cred = nil
	c.mu.Unlock()
	if err := os.Remove(c.cachePath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("access: forget sign-in: %w", err)
	}
	return nil
}

// forget drops cr if it is still the current sign-in.
func (c *Client) forget(cr *credential) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cred == cr {
		c.cred = nil
		_ = os.Remove(c.cachePath())
	}
}

func (c *Client) cachePath() string {
	dir := c.cfg.CacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		dir = filepath.Join(base, "postern")
	}
	return filepath.Join(dir, "access-"+strings.NewReplacer(":", "_", "/", "_").Replace(c.app.Host)+".json")
}

// loadCached returns the cached sign-in for the app, or nil.
func (c *Client) loadCached() *credential {
	b, err := os.ReadFile(c.cachePath())
	if err != nil {
		return nil
	}
	var cr credential
	if json.Unmarshal(b, &cr) != nil || cr.App != c.app.Host || cr.Token == "" || cr.Nonce == "" {
		return nil
	}
	return &cr
}

func (c *Client) saveCached(cr *credential) error {
	b, err := json.Marshal(cr)
	if err != nil {
		return err
	}
	p := c.cachePath()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("access: cache sign-in: %w", err)
	}
	if err := wgkey.WriteFileAtomic(p, b, 0o600); err != nil {
		return fmt.Errorf("access: cache sign-in: %w", err)
	}
	return nil
}

var donePage = template.Must(template.New("done").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Postern</title></head>
<body><h1>{{.}}</h1><p>You can close this tab.</p></body></html>`))

// signIn runs a browser sign-in: a loopback listener receives the app
// token, bound to a fresh nonce through its hash. The result is cached.
func (c *Client) signIn(ctx context.Context) (*credential, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("access: %w", err)
	}
	nonce := base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(nonce))
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("access: sign-in listener: %w", err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	got := make(chan string, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.URL.Query().Get("token")
		if r.URL.Path != "/callback" || tok == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		donePage.Execute(w, "Signed in to "+c.app.Host)
		select {
		case got <- tok:
		default:
		}
	})}
	go func() { _ = srv.Serve(l) }() // ErrServerClosed after the deferred Close
	defer func() { _ = srv.Close() }()
	q := url.Values{"port": {strconv.Itoa(port)}, "b": {base64.RawURLEncoding.EncodeToString(sum[:])}}
	start := *c.app
	start.Path, start.RawQuery = LoginPath, q.Encode()
	fmt.Fprintf(c.cfg.Prompt, "To sign in to %s, open this page in your browser:\n  %s\n", c.app.Host, start.String())
	if c.cfg.OpenBrowser != nil {
		if err := c.cfg.OpenBrowser(start.String()); err != nil {
			fmt.Fprintf(c.cfg.Prompt, "(could not open a browser: %v)\n", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.SignInTimeout)
	defer cancel()
	select {
	case tok := <-got:
		exp, err := tokenExpiry(tok)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSignIn, err)
		}
		cr := &credential{App: c.app.Host, Token: tok, Nonce: nonce, Expires: exp}
		if err := c.saveCached(cr); err != nil {
			fmt.Fprintf(c.cfg.Prompt, "connectord access: %v (the sign-in is kept in memory only)\n", err)
		}
		return cr, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: no answer from the browser: %w", ErrSignIn, ctx.Err())
	}
}

// tokenExpiry reads the exp of a JWT without verifying it: the mesh
// verifies; the client only needs to know when to sign in again.
func tokenExpiry(tok string) (int64, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return 0, errors.New("the token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return 0, errors.New("the token is not a JWT")
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil || c.Exp <= 0 {
		return 0, errors.New("the token has no expiry")
	}
	return c.Exp, nil
}
