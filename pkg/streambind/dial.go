package streambind

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Target is where and how a connector opens its stream to one mesh node.
type Target struct {
	// URL is the mesh node's base URL, the one the connector attaches
	// through ("https://mesh.example.com").
	URL string
	// Credential returns the connector's current credential; it is called
	// on every dial, so a renewed credential is used from then on.
	Credential func() string
	// Proof returns the proof of possession that goes with credential, for
	// the node's ProofHeader; nil sends none (the node then refuses).
	Proof func(credential string) string
	// Transport carries the upgrade request. An *http.Transport is cloned
	// and limited to HTTP/1.1, keeping its TLS settings and its Proxy
	// (http.ProxyFromEnvironment honours HTTPS_PROXY and NO_PROXY, and a
	// proxy URL's user and password become CONNECT's basic
	// authentication). Nil means a clone of http.DefaultTransport.
	Transport http.RoundTripper
}

// streamTransport returns the RoundTripper that dials streams for rt.
func streamTransport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	t, ok := rt.(*http.Transport)
	if !ok {
		return rt
	}
	t = t.Clone()
	var p http.Protocols
	p.SetHTTP1(true)
	t.Protocols = &p
	t.ForceAttemptHTTP2 = false
	t.TLSNextProto = nil
	if t.TLSClientConfig != nil {
		// A config that offers h2 in ALPN would let the server choose it;
		// an upgrade needs HTTP/1.1.
		t.TLSClientConfig = t.TLSClientConfig.Clone()
		t.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	// Every stream has a connection of its own; one that answers without
	// switching is closed rather than pooled.
	t.DisableKeepAlives = true
	return t
}

// maxRefusalBody caps what is read of a refusal's body.
const maxRefusalBody = 512

// dial opens a stream to t through rt and returns it once the mesh node
// has switched protocols.
func dial(ctx context.Context, rt http.RoundTripper, t Target) (io.ReadWriteCloser, error) {
	url := strings.TrimRight(t.URL, "/") + Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("streambind: dial %s: %w", url, err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", Protocol)
	if t.Credential != nil {
		cred := t.Credential()
		req.Header.Set("Authorization", "Bearer "+cred)
		if t.Proof != nil {
			req.Header.Set(ProofHeader, t.Proof(cred))
		}
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("streambind: dial %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxRefusalBody))
		resp.Body.Close()
		return nil, fmt.Errorf("streambind: dial %s: %w: HTTP %d: %s", url, ErrUpgradeRefused, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok || !strings.EqualFold(resp.Header.Get("Upgrade"), Protocol) {
		resp.Body.Close()
		return nil, fmt.Errorf("streambind: dial %s: %w: switched to %q", url, ErrUpgradeRefused, resp.Header.Get("Upgrade"))
	}
	return rwc, nil
}
