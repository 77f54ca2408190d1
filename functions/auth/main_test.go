package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/devcert"
)

// TestServeTLS serves a handler with --tls-cert and --tls-key on a real
// loopback socket: a client that trusts the CA gets the answer over TLS,
// a plain HTTP request is not served, and cancelling stops the server.
// Without a certificate the same address serves plain HTTP; unreadable or
// mismatched files fail the start.
func TestServeTLS(t *testing.T) {
	ca, err := devcert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("localhost")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ca.WriteFiles(dir, cert); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			io.WriteString(w, "plain")
			return
		}
		io.WriteString(w, "tls")
	})
	logger := slog.New(slog.DiscardHandler)
	get := func(c *http.Client, u string) (string, error) {
		resp, err := c.Get(u)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return string(b), &statusError{resp.StatusCode}
		}
		return string(b), err
	}

	l, err := listen(serveOptions{listen: "127.0.0.1:0", certFile: certFile, keyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	sctx, scancel := context.WithCancel(t.Context())
	go func() { errc <- serve(sctx, l, h, true, logger) }()
	addr := l.Addr().String()
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}}}
	if body, err := get(tlsClient, "https://"+addr+"/"); err != nil || body != "tls" {
		t.Fatalf("over TLS: %q, %v", body, err)
	}
	if body, err := get(&http.Client{}, "http://"+addr+"/"); err == nil || body == "plain" || body == "tls" {
		t.Fatalf("plain HTTP to the TLS port was served: %q, %v", body, err)
	}
	scancel()
	if err := <-errc; err != nil {
		t.Fatalf("serve after cancel: %v", err)
	}

	l, err = listen(serveOptions{listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(t.Context())
	go func() { errc <- serve(pctx, l, h, false, logger) }()
	if body, err := get(&http.Client{}, "http://"+l.Addr().String()+"/"); err != nil || body != "plain" {
		t.Fatalf("plain mode: %q, %v", body, err)
	}
	pcancel()
	if err := <-errc; err != nil {
		t.Fatalf("serve after cancel: %v", err)
	}

	other, err := ca.Issue("localhost")
	if err != nil {
		t.Fatal(err)
	}
	otherDir := t.TempDir()
	if err := ca.WriteFiles(otherDir, other); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600)
	for name, o := range map[string]serveOptions{
		"missing cert":   {listen: "127.0.0.1:0", certFile: filepath.Join(dir, "nope.pem"), keyFile: keyFile},
		"garbage cert":   {listen: "127.0.0.1:0", certFile: garbage, keyFile: keyFile},
		"mismatched key": {listen: "127.0.0.1:0", certFile: certFile, keyFile: filepath.Join(otherDir, "key.pem")},
	} {
		if l, err := listen(o); err == nil || !strings.Contains(err.Error(), "--tls-cert") {
			if l != nil {
				l.Close()
			}
			t.Errorf("%s: got %v, want an error naming --tls-cert", name, err)
		}
	}
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }
