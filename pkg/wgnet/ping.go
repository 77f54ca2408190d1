package wgnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"

	"github.com/postern/postern/pkg/wgkey"
)

func hexDecode(s string) ([]byte, error) { return hex.DecodeString(s) }

func (n *Node) startEcho() error {
	fa, proto := fullAddr(netip.AddrPortFrom(n.addr, EchoPort))
	pc, err := gonet.DialUDP(n.stack, &fa, nil, proto)
	if err != nil {
		return fmt.Errorf("wgnet: start echo responder: %w", err)
	}
	n.echo = pc
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		buf := make([]byte, 64)
		for {
			m, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:m], from)
		}
	}()
	return nil
}

// Ping measures one round trip over the tunnel to the node at peer's tunnel
// address, and records it as that peer's RTT. It fails when ctx ends first.
func (n *Node) Ping(ctx context.Context, peer wgkey.Public) (time.Duration, error) {
	fa, proto := fullAddr(netip.AddrPortFrom(peer.Addr(), EchoPort))
	c, err := gonet.DialUDP(n.stack, nil, &fa, proto)
	if err != nil {
		return 0, fmt.Errorf("wgnet: ping %s: %w", peer.Short(), err)
	}
	defer func() { _ = c.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var probe [16]byte
	rand.Read(probe[:])
	start := time.Now()
	if _, err := c.Write(probe[:]); err != nil {
		return 0, fmt.Errorf("wgnet: ping %s: %w", peer.Short(), err)
	}
	buf := make([]byte, 64)
	for {
		m, err := c.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return 0, fmt.Errorf("wgnet: ping %s: %w", peer.Short(), err)
		}
		if m == len(probe) && [16]byte(buf[:16]) == probe {
			break
		}
	}
	rtt := time.Since(start)
	n.mu.Lock()
	n.rtt[peer] = rtt
	n.mu.Unlock()
	return rtt, nil
}
