// Package dnstest is a DNS server on loopback for tests (github.com/miekg/dns):
// it answers A and AAAA questions from a zone the test sets, so that
// discovery by DNS name (pkg/discover) and an ACME server's validation
// lookups (Pebble's -dnsserver, in pkg/acmecert's tests) run against real
// DNS messages. Nothing in a binary imports it.
package dnstest

import (
	"context"
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
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		tb.Fatal(err)
	}
	s := &Server{Addr: pc.LocalAddr().String()}
	s.Set(zone)
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: s}, {Listener: l, Handler: s}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		tb.Cleanup(func() { srv.Shutdown() })
	}
	return s
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
	w.WriteMsg(m)
}

// Resolver returns a resolver that asks only this server.
func (s *Server) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr)
	}}
}
