package connector

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"time"

	"github.com/postern/postern/pkg/streambind"
	"github.com/postern/postern/pkg/wgkey"
	"github.com/postern/postern/pkg/wgnet"
)

// streamWait bounds the wait for the stream to connect and carry a first
// round trip.
const streamWait = 10 * time.Second

// probeWindow is how long a UDP probe sends copies over UDP and listens
// for an answer.
const probeWindow = 2 * time.Second

// connect makes link's mesh node a WireGuard peer over the carrier mode
// asks for and returns the carrier in use. Forced UDP returns at once (the
// watch loop finds out whether it works, as before the stream existed);
// auto waits up to UDPTimeout for a round trip over UDP, then moves to
// the stream; the stream waits for its connection and a round trip.
func (c *Connector) connect(ctx context.Context, link *meshLink, mode streambind.Carrier) (streambind.Carrier, error) {
	if mode == streambind.CarrierStream {
		return c.connectStream(ctx, link)
	}
	if err := c.bind.SetCarrier(link.ep, streambind.CarrierUDP); err != nil {
		return "", err
	}
	if err := c.node.AddPeer(c.peer(link)); err != nil {
		return "", err
	}
	if mode == streambind.CarrierUDP || c.pingWithin(ctx, link.pub, c.cfg.UDPTimeout) {
		return streambind.CarrierUDP, nil
	}
	c.logger.Info("udp_unanswered", "mesh_url", link.url, "mesh_node", link.nodeID, "waited_ms", c.cfg.UDPTimeout.Milliseconds())
	return c.connectStream(ctx, link)
}

// connectStream moves link to the stream, waits for it to connect, then
// restarts the WireGuard session over it: a handshake lost over UDP would
// otherwise be retried only after WireGuard's 5 s rekey timeout.
func (c *Connector) connectStream(ctx context.Context, link *meshLink) (streambind.Carrier, error) {
	if err := c.bind.SetCarrier(link.ep, streambind.CarrierStream); err != nil {
		return "", err
	}
	wctx, cancel := context.WithTimeout(ctx, streamWait)
	defer cancel()
	if !poll(wctx, func() bool { return c.bind.StreamConnected(link.ep) }) {
		return "", fmt.Errorf("attach %s: the stream carrier did not connect within %v", link.url, streamWait)
	}
	_ = c.node.RemovePeer(link.pub)
	if err := c.node.AddPeer(c.peer(link)); err != nil {
		return "", err
	}
	if !c.pingWithin(wctx, link.pub, streamWait) {
		return "", fmt.Errorf("attach %s: no WireGuard round trip over the stream carrier within %v", link.url, streamWait)
	}
	return streambind.CarrierStream, nil
}

// probeUDP sends copies of the tunnel's packets over UDP for a short
// window; if the mesh node answers over UDP, link moves back to UDP.
func (c *Connector) probeUDP(ctx context.Context, link *meshLink) {
	before := c.bind.UDPReceived(link.ep)
	c.bind.SetProbe(link.ep, true)
	pctx, cancel := context.WithTimeout(ctx, probeWindow)
	ok := poll(pctx, func() bool {
		rctx, rcancel := context.WithTimeout(pctx, 250*time.Millisecond)
		defer rcancel()
		_, _ = c.node.Ping(rctx, link.pub)
		return c.bind.UDPReceived(link.ep) > before
	})
	cancel()
	c.bind.SetProbe(link.ep, false)
	if !ok {
		c.logger.Debug("udp_probe_unanswered", "mesh_url", link.url)
		return
	}
	if err := c.bind.SetCarrier(link.ep, streambind.CarrierUDP); err != nil {
		return
	}
	link.carrier.Store(streambind.CarrierUDP)
	c.logger.Info("carrier_changed", "mesh_url", link.url, "mesh_node", link.nodeID, "from", streambind.CarrierStream, "carrier", streambind.CarrierUDP)
}

func (c *Connector) peer(link *meshLink) wgnet.Peer {
	return wgnet.Peer{PublicKey: link.pub, Endpoint: link.ep, Keepalive: c.cfg.Keepalive}
}

// credential returns the current credential, for the stream's dials.
func (c *Connector) credential() string { return c.State().Credential }

// pingWithin pings pub until one round trip succeeds or d passes.
func (c *Connector) pingWithin(ctx context.Context, pub wgkey.Public, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return poll(ctx, func() bool {
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer pcancel()
		_, err := c.node.Ping(pctx, pub)
		return err == nil
	})
}

// poll calls cond every 20ms until it holds (true) or ctx ends (false).
func poll(ctx context.Context, cond func() bool) bool {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// placeholderEndpoint is the route key of a mesh node whose UDP endpoint
// does not resolve: an address in the discard-only prefix 100::/64 (RFC
// 6666) derived from its URL, never sent to.
func placeholderEndpoint(meshURL string) netip.AddrPort {
	h := sha256.Sum256([]byte(meshURL))
	var a [16]byte
	a[0], a[1] = 0x01, 0x00
	copy(a[8:], h[:8])
	return netip.AddrPortFrom(netip.AddrFrom16(a), 9)
}

// Carriers returns the carrier in use to each attached mesh node, by mesh
// URL.
func (c *Connector) Carriers() map[string]streambind.Carrier {
	out := make(map[string]streambind.Carrier)
	c.attached.Range(func(_, v any) bool {
		l := v.(*meshLink)
		out[l.url] = l.carrierNow()
		return true
	})
	return out
}
