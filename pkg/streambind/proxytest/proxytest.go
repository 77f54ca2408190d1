// Package proxytest is a small HTTP CONNECT proxy on loopback that demands
// basic authentication, the kind of outbound proxy corporate networks put
// in front of connectors. Tests of the stream carrier, of enrolment and of
// attach send their traffic through it to prove they honour a proxy.
package proxytest

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is a running CONNECT proxy. Its methods are safe for concurrent
// use.
type Proxy struct {
	l          net.Listener
	user, pass string
	tunnels    atomic.Int64
	refused    atomic.Int64
	wg         sync.WaitGroup

	mu     sync.Mutex // guards the following
	conns  map[net.Conn]struct{}
	closed bool
}

// Start starts a proxy on 127.0.0.1 that admits CONNECT requests carrying
// user and pass as basic authentication.
func Start(user, pass string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{l: l, user: user, pass: pass, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// URL returns the proxy's URL with its credentials, as HTTPS_PROXY would
// hold it.
func (p *Proxy) URL() *url.URL {
	return &url.URL{Scheme: "http", User: url.UserPassword(p.user, p.pass), Host: p.l.Addr().String()}
}

// Tunnels returns how many CONNECT tunnels the proxy has opened.
func (p *Proxy) Tunnels() int64 { return p.tunnels.Load() }

// Refused returns how many requests the proxy refused.
func (p *Proxy) Refused() int64 { return p.refused.Load() }

// Close stops the proxy, cuts every tunnel and waits for its goroutines.
// It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.l.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			p.serve(c)
		}()
	}
}

// serve handles one client connection: one CONNECT, then bytes both ways.
func (p *Proxy) serve(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.user+":"+p.pass))
	switch {
	case req.Method != http.MethodConnect:
		p.refused.Add(1)
		_, _ = io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
		return
	case req.Header.Get("Proxy-Authorization") != want:
		p.refused.Add(1)
		_, _ = io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.DialTimeout("tcp", req.Host, 5*time.Second)
	if err != nil {
		_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	p.tunnels.Add(1)
	// A failed write of a reply means the client went away: the copies below
	// end at once, and the client reports it.
	_, _ = io.WriteString(c, "HTTP/1.1 200 Connection Established\r\n\r\n")
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(up, br) // a copy ends when either side closes
		up.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(c, up)
	c.(*net.TCPConn).CloseWrite()
	<-done
}
