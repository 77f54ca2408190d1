// Package dnstest is a DNS server on loopback for tests (github.com/miekg/dns):
// it answers A and AAAA questions from a zone the test sets, so that
// discovery by DNS name (pkg/discover) and an ACME server's validation
// lookups (Pebble's -dnsserver, in pkg/acmecert's tests) run against real
// DNS messages. Nothing in a binary imports it.
package dnstest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server answers from its zone on 127.0.0.1 (UDP and TCP, same port).
type Server struct {
	// Addr is the server's "127.0.0.1:port".
	Addr string

	mu       sync.Mutex // guards the following
	zone     map[string][]net.IP
	wildcard []net.IP
}

// Start starts a server with zone (name → addresses; "*" answers every
// other name) and stops it at the test's end.
func Start(tb testing.TB, zone map[string][]string) *Server {
	tb.Helper()
	pc, l, err := listen()
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{Addr: pc.LocalAddr().String()}
	s.Set(zone)
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: s}, {Listener: l, Handler: s}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		// Serving ends at Shutdown below; a failure to start shows as
		// queries that go unanswered, which the test reports.
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		tb.Cleanup(func() {
			if err := srv.Shutdown(); err != nil {
				tb.Errorf("dnstest: shutdown: %v", err)
			}
		})
	}
	return s
}

// listen binds a UDP and a TCP socket on one loopback port. The UDP port
// comes from the kernel; the same TCP port may be taken (an outgoing
// connection on a busy machine), so it tries again on another, a bounded
// number of times.
func listen() (net.PacketConn, net.Listener, error) {
	var err error
	for range 50 {
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return nil, nil, err
		}
		var l net.Listener
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			return pc, l, nil
		}
		_ = pc.Close()
	}
	return nil, nil, fmt.Errorf("dnstest: no loopback port free for both UDP and TCP: %w", err)
}

// Set replaces the zone.
func (s *Server) Set(zone map[string][]string) {
	z := map[string][]net.IP{}
	var wild []net.IP
	for name, addrs := range zone {
		var ips []net.IP
		for _, a := range addrs {
			ips = append(ips, net.ParseIP(a))
		}
		if name == "*" {
			wild = ips
		} else {
			z[strings.ToLower(strings.TrimSuffix(name, "."))] = ips
		}
	}
	s.mu.Lock()
	s.zone, s.wildcard = z, wild
	s.mu.Unlock()
}

// ServeDNS answers one message.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range r.Question {
		ips, ok := s.zone[strings.ToLower(strings.TrimSuffix(q.Name, "."))]
		if !ok && s.wildcard != nil {
			ips, ok = s.wildcard, true
		}
		if !ok {
			m.Rcode = dns.RcodeNameError
			continue
		}
		for _, ip := range ips {
			hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 5}
			switch {
			case q.Qtype == dns.TypeA && ip.To4() != nil:
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: ip.To4()})
			case q.Qtype == dns.TypeAAAA && ip.To4() == nil:
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: ip})
			}
		}
	}
	_ = w.WriteMsg(m) // a lost answer is a lost UDP packet: the resolver retries
}

// Resolver returns a resolver that asks only this server.
func (s *Server) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr)
	}}
}
