package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/postern/postern/pkg/backoff"
	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/wgkey"
)

// tunnel is the WireGuard side of an attachment. The connector's own is
// wgTunnel; tests replace it. Its methods are called from the per-node
// loops, concurrently for different links.
type tunnel interface {
	// connect makes the mesh node that answered resp for meshURL a
	// WireGuard peer and returns the link; prev is the previous link of
	// the same loop, or nil.
	connect(ctx context.Context, meshURL string, resp enroll.AttachResponse, prev *meshLink) (*meshLink, error)
	// watch blocks until the link is lost or ctx ends.
	watch(ctx context.Context, link *meshLink)
	// unlink removes the link's peer and its route in the bind.
	unlink(link *meshLink)
}

// run is the loop that keeps one mesh node attached.
type run struct {
	url      string
	cancel   context.CancelFunc
	done     chan struct{}
	retiring bool // guarded by Connector.mmu
}

// stop ends the loop and waits for it.
func (r *run) stop() {
	r.cancel()
	<-r.done
}

// manage keeps the connector attached to the Attach nearest mesh nodes
// until ctx ends, then stops every per-node loop.
func (c *Connector) manage(ctx context.Context) {
	defer c.stopRuns()
	if len(c.State().Nodes) == 0 {
		c.startSeeds(ctx)
	} else {
		c.measure(ctx)
		c.reconcile(ctx)
	}
	t := time.NewTimer(c.nextEvaluation())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.mmu.Lock()
			clear(c.down) // lost nodes are candidates again
			c.mmu.Unlock()
			c.measure(ctx)
			c.reconcile(ctx)
			t.Reset(c.nextEvaluation())
		case <-c.kick:
			if c.needMeasure() {
				c.measure(ctx)
				t.Stop()
				t.Reset(c.nextEvaluation())
			}
			c.reconcile(ctx)
		}
	}
}

// recentLoss and recentLossBackoff: for recentLoss after an attachment
// was lost, attaching to that node again is retried at least every
// recentLossBackoff (a restarting node is back within seconds), instead of
// backing off to BackoffMax.
const (
	recentLoss        = 2 * time.Minute
	recentLossBackoff = time.Second
)

// retrySoon is the re-evaluation interval while some known node did not
// answer the last measurement: a node that was restarting, or briefly
// unreachable, should not keep the connector on a far node for Reevaluate.
const retrySoon = 10 * time.Second

// nextEvaluation is Reevaluate (jittered), or retrySoon while a candidate
// was unreachable.
func (c *Connector) nextEvaluation() time.Duration {
	c.mmu.Lock()
	defer c.mmu.Unlock()
	for _, d := range c.rtts {
		if d == unreachable {
			return jitter10(min(c.cfg.Reevaluate, retrySoon))
		}
	}
	return jitter10(c.cfg.Reevaluate)
}

// kickManager asks the manager to reconsider the attachments.
func (c *Connector) kickManager() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Connector) startSeeds(ctx context.Context) {
	c.mmu.Lock()
	defer c.mmu.Unlock()
	for _, u := range c.State().candidates(nil) {
		c.startRunLocked(ctx, u)
	}
}

// needMeasure reports whether the last measurement is older than half of
// Reevaluate or misses a candidate.
func (c *Connector) needMeasure() bool {
	st := c.State()
	c.mmu.Lock()
	defer c.mmu.Unlock()
	if c.cfg.Now().Sub(c.measuredAt) > c.cfg.Reevaluate/2 {
		return true
	}
	for _, u := range st.candidates(c.alias) {
		if _, ok := c.rtts[u]; !ok {
			return true
		}
	}
	return false
}

// refreshNodes asks an attached node (or a seed) for the current list of
// mesh nodes: the cluster may have grown since the last attach.
func (c *Connector) refreshNodes(ctx context.Context) {
	st := c.State()
	urls := append(c.attachedURLs(), st.MeshURLs...)
	for _, u := range urls {
		cl := &enroll.Client{BaseURL: u, HTTPClient: c.cfg.HTTPClient}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		nodes, err := cl.Nodes(rctx, st.Credential)
		cancel()
		if err != nil {
			c.logger.Debug("mesh_nodes_refresh_failed", "mesh_url", u, "error", err)
			continue
		}
		c.mergeNodes(nodes, u)
		return
	}
}

// measure refreshes the node list, times every candidate and records the
// result.
func (c *Connector) measure(ctx context.Context) {
	c.refreshNodes(ctx)
	st := c.State()
	c.mmu.Lock()
	urls := st.candidates(c.alias)
	c.mmu.Unlock()
	rtts := measureRTTs(ctx, c.cfg.HTTPClient, urls, c.cfg.MeasureCount)
	if ctx.Err() != nil {
		return
	}
	c.mmu.Lock()
	c.rtts, c.measuredAt = rtts, c.cfg.Now()
	c.mmu.Unlock()
	attrs := make([]any, 0, 2*len(rtts))
	for _, u := range urls {
		attrs = append(attrs, u, rttMillis(rtts[u]))
	}
	c.logger.Debug("mesh_measured", slog.Group("rtt_ms", attrs...))
}

// reconcile starts loops to the mesh nodes it now wants and retires the
// others, replacements first.
func (c *Connector) reconcile(ctx context.Context) {
	st := c.State()
	c.mmu.Lock()
	defer c.mmu.Unlock()
	if c.draining || ctx.Err() != nil {
		return
	}
	rtts := make(map[string]time.Duration, len(c.rtts))
	for u, d := range c.rtts {
		if r := c.runs[u]; !c.down[u] && (r == nil || !r.retiring) {
			rtts[u] = d
		}
	}
	var current []string
	for u, r := range c.runs {
		if !r.retiring {
			current = append(current, u)
		}
	}
	slices.Sort(current)
	want := c.sameNodeLocked(st.Nodes, choose(current, rtts, c.cfg.Attach), current)
	// Better a loop that retries than none; attached ones first.
	slices.SortStableFunc(current, func(a, b string) int { return boolCmp(c.linkOf(b) != nil, c.linkOf(a) != nil) })
	for _, u := range current {
		if len(want) < c.cfg.Attach && !slices.Contains(want, u) {
			want = append(want, u)
		}
	}
	if len(want) == 0 {
		want = st.candidates(c.alias)
	}
	for _, u := range want {
		if c.runs[u] == nil {
			c.startRunLocked(ctx, u)
		}
	}
	for _, u := range current {
		if !slices.Contains(want, u) {
			c.retireLocked(ctx, c.runs[u])
		}
	}
}

// sameNodeLocked replaces each URL in want by the URL of a current loop
// that reached the same mesh node under another URL (a seed spelled
// differently), so that no node is attached twice.
func (c *Connector) sameNodeLocked(nodes []enroll.NodeInfo, want, current []string) []string {
	id := func(u string) string {
		if i := slices.IndexFunc(nodes, func(n enroll.NodeInfo) bool { return n.URL == u }); i >= 0 {
			return nodes[i].ID
		}
		return c.alias[u]
	}
	for i, w := range want {
		for _, u := range current {
			if u != w && id(u) != "" && id(u) == id(w) && !slices.Contains(want, u) {
				want[i] = u
			}
		}
	}
	return want
}

func (c *Connector) startRunLocked(ctx context.Context, meshURL string) {
	rctx, cancel := context.WithCancel(ctx)
	r := &run{url: meshURL, cancel: cancel, done: make(chan struct{})}
	c.runs[meshURL] = r
	c.loops.Add(1)
	go func() {
		defer c.loops.Done()
		defer close(r.done)
		c.nodeLoop(rctx, meshURL)
	}()
}

// retireLocked gives up r's mesh node: drain it (unless it is lost), wait
// for the requests in flight, detach, and stop the loop.
func (c *Connector) retireLocked(ctx context.Context, r *run) {
	r.retiring = true
	lost := c.down[r.url]
	c.loops.Add(1)
	go func() {
		defer c.loops.Done()
		link := c.linkOf(r.url)
		if link != nil && !lost {
			c.logger.Info("mesh_node_retiring", "mesh_url", r.url, "mesh_node", link.nodeID)
			_ = c.detachAll(ctx, []*meshLink{link}, true) // logs each failure
			wctx, cancel := context.WithTimeout(ctx, c.cfg.DrainWait)
			c.waitIdle(wctx)
			cancel()
			if ctx.Err() == nil {
				_ = c.detachAll(ctx, []*meshLink{link}, false) // logs each failure
			}
		}
		r.stop()
		c.mmu.Lock()
		if c.runs[r.url] == r {
			delete(c.runs, r.url)
		}
		c.mmu.Unlock()
		c.logger.Info("mesh_node_retired", "mesh_url", r.url, "lost", lost)
		c.kickManager()
	}()
}

// stopRuns stops every per-node loop and waits for them.
func (c *Connector) stopRuns() {
	c.mmu.Lock()
	runs := make([]*run, 0, len(c.runs))
	for _, r := range c.runs {
		runs = append(runs, r)
	}
	c.mmu.Unlock()
	for _, r := range runs {
		r.stop()
	}
}

// nodeLoop attaches to one mesh node, watches the attachment, and attaches
// again, with jittered backoff, until ctx ends or the connector drains. It
// tells the manager about every failure and loss.
func (c *Connector) nodeLoop(ctx context.Context, meshURL string) {
	cl := c.apiClient(meshURL, c.knownNodeKey(meshURL))
	bo := backoff.New(c.cfg.BackoffMin, c.cfg.BackoffMax)
	var prev *meshLink
	defer func() {
		if prev != nil {
			c.tun.unlink(prev)
		}
	}()
	var lostAt time.Time // when the last attachment was lost
	for ctx.Err() == nil && !c.isDraining() {
		link, err := c.attach(ctx, cl, meshURL, prev)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.logger.Warn("attach_failed", "mesh_url", meshURL, "error", withTLSHint(err), "retry_in_ms", bo.Delay().Milliseconds())
			c.markDown(meshURL)
			if !bo.Wait(ctx) {
				return
			}
			if !lostAt.IsZero() && c.cfg.Now().Sub(lostAt) < recentLoss {
				// A node we were attached to is likely restarting: try
				// it often, so it serves again as soon as it is back.
				bo.Cap(recentLossBackoff)
			}
			continue
		}
		bo.Reset()
		prev = link
		c.mmu.Lock()
		delete(c.down, meshURL)
		c.mmu.Unlock()
		c.attached.Store(meshURL, link)
		c.nAttached.Add(1)
		c.logger.Info("attached", "mesh_url", meshURL, "mesh_node", link.nodeID, "carrier", link.carrierNow())
		c.kickManager()
		c.tun.watch(ctx, link)
		lostAt = c.cfg.Now()
		c.attached.Delete(meshURL)
		c.nAttached.Add(-1)
		if ctx.Err() == nil && !c.isDraining() {
			c.logger.Warn("mesh_unreachable", "mesh_url", meshURL, "mesh_node", link.nodeID)
			c.markDown(meshURL)
		}
	}
}

// attach presents the credential to the mesh node at meshURL, learns the
// nodes it names, and connects the tunnel.
func (c *Connector) attach(ctx context.Context, cl *enroll.Client, meshURL string, prev *meshLink) (*meshLink, error) {
	actx, cancel := context.WithTimeout(ctx, 15*time.Second+c.cfg.UDPTimeout)
	defer cancel()
	resp, err := cl.Attach(actx, c.State().Credential)
	if err != nil {
		return nil, err
	}
	c.learn(meshURL, resp)
	return c.tun.connect(actx, meshURL, resp, prev)
}

// apiClient returns a client of the node at meshURL that proves
// possession of the connector's key; nodeKey is the node's WireGuard key
// if known (zero: learnt from its first answer).
func (c *Connector) apiClient(meshURL string, nodeKey wgkey.Public) *enroll.Client {
	return &enroll.Client{BaseURL: meshURL, HTTPClient: c.cfg.HTTPClient, Key: c.key, NodeKey: nodeKey, Now: c.cfg.Now}
}

// knownNodeKey returns the WireGuard key of the node at meshURL from the
// node list, or zero.
func (c *Connector) knownNodeKey(meshURL string) wgkey.Public {
	for _, n := range c.State().Nodes {
		if n.URL == strings.TrimRight(meshURL, "/") {
			return n.PublicKey
		}
	}
	return wgkey.Public{}
}

// learn records the node id behind meshURL and merges the nodes resp
// names into the state, saving it when it changed.
func (c *Connector) learn(meshURL string, resp enroll.AttachResponse) {
	c.mmu.Lock()
	c.alias[meshURL] = resp.NodeID
	c.mmu.Unlock()
	c.mergeNodes(resp.Nodes, resp.NodeID)
}

// mergeNodes merges nodes into the state, saving it when it changed.
func (c *Connector) mergeNodes(nodes []enroll.NodeInfo, from string) {
	c.mu.Lock()
	merged, changed := mergeNodes(c.state.Nodes, nodes)
	var err error
	if changed {
		next := *c.state
		next.Nodes = merged
		if err = next.Save(c.cfg.StateDir); err == nil {
			c.state = &next
		}
	}
	c.mu.Unlock()
	if err != nil {
		c.logger.Warn("state_save_failed", "error", err)
	}
	if changed {
		c.logger.Info("mesh_nodes_learned", "mesh_nodes", len(merged), "mesh_url", from)
		c.kickManager()
	}
}

func (c *Connector) markDown(meshURL string) {
	c.mmu.Lock()
	c.down[meshURL] = true
	c.mmu.Unlock()
	c.kickManager()
}

func (c *Connector) isDraining() bool {
	c.mmu.Lock()
	defer c.mmu.Unlock()
	return c.draining
}

func (c *Connector) linkOf(meshURL string) *meshLink {
	v, ok := c.attached.Load(meshURL)
	if !ok {
		return nil
	}
	return v.(*meshLink)
}

// Drain takes the connector out of service: it tells every attached mesh
// node to send no new requests, waits until no request is in flight here
// (or ctx ends), then detaches from every node and stops re-attaching. Run
// keeps going until its own ctx ends. Drain errors when a node could not
// be told or when ctx ended with requests still in flight.
func (c *Connector) Drain(ctx context.Context) error {
	c.mmu.Lock()
	c.draining = true
	c.mmu.Unlock()
	var links []*meshLink
	c.attached.Range(func(_, v any) bool { links = append(links, v.(*meshLink)); return true })
	c.logger.Info("drain_started", "mesh_nodes", len(links), "in_flight", c.inFlight())
	// Each node stops picking us when it answers the first detach; the
	// final one returns only when that node has no request left with us,
	// which covers those still on their way through the tunnel.
	err := c.detachAll(ctx, links, true)
	idle := c.waitIdle(ctx)
	fctx, cancel := c.finalDetachContext(ctx)
	err = errors.Join(err, c.detachAll(fctx, links, false))
	cancel()
	idle = idle && c.waitIdle(ctx)
	c.stopRuns()
	left := c.inFlight()
	c.logger.Info("drain_done", "mesh_nodes", len(links), "in_flight", left, "complete", idle && err == nil)
	if !idle {
		err = errors.Join(err, fmt.Errorf("connector: drain: %d requests still in flight: %w", left, ctx.Err()))
	}
	return err
}

// Leave ends the connector's identity, after Drain: it has a mesh node
// revoke its credential for the whole mesh (enroll.LeavePath, with a proof
// that it holds the key), trying the known nodes in turn until one
// records it, then removes the key and state from the state directory
// (Forget), so that the next start enrols as a new connector. When no
// node records it the state stays, so that a restart reuses this identity
// rather than adding one; it dies with its credential in any case.
func (c *Connector) Leave(ctx context.Context) error {
	s := c.State()
	var errs []error
	for _, u := range s.candidates(nil) {
		err := c.apiClient(u, c.knownNodeKey(u)).Leave(ctx, s.Credential)
		if err == nil {
			c.logger.Info("connector_left", "mesh_url", u, "connector", s.ConnectorID)
			return Forget(c.cfg.StateDir)
		}
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("connector: leave: %w", errors.Join(errs...))
}

// finalDetachContext bounds the final detach of a drain: it waits at the
// node for the requests still in flight there, so it may take as long as
// the drain may, but at least detachTimeout (the node removes us in any
// case once the request ends).
func (c *Connector) finalDetachContext(ctx context.Context) (context.Context, context.CancelFunc) {
	d, ok := ctx.Deadline()
	if !ok || time.Until(d) < detachTimeout {
		d = time.Now().Add(detachTimeout)
	}
	return context.WithDeadline(context.WithoutCancel(ctx), d)
}

// detachAll sends Detach(drain) to the node of every link, concurrently,
// each bounded by detachTimeout, or by ctx's deadline when that is later
// (the final detach of a drain waits for the node's requests in flight).
func (c *Connector) detachAll(ctx context.Context, links []*meshLink, drain bool) error {
	errs := make([]error, len(links))
	var wg sync.WaitGroup
	for i, l := range links {
		wg.Go(func() {
			dctx, cancel := context.WithTimeout(ctx, detachTimeout)
			if d, ok := ctx.Deadline(); ok && time.Until(d) > detachTimeout {
				dctx, cancel = context.WithCancel(ctx)
			}
			defer cancel()
			cl := c.apiClient(l.url, l.pub)
			if err := cl.Detach(dctx, c.State().Credential, drain); err != nil {
				errs[i] = fmt.Errorf("connector: %s: %w", l.url, err)
				c.logger.Warn("detach_failed", "mesh_url", l.url, "mesh_node", l.nodeID, "drain", drain, "error", err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitIdle waits until no request is in flight here; false if ctx ended
// first.
func (c *Connector) waitIdle(ctx context.Context) bool {
	return poll(ctx, func() bool { return c.inFlight() == 0 })
}

// inFlight counts the requests here: busy connections of the in-tunnel
// server (a request arriving or being served) and requests the egress
// serves (which covers upgraded connections).
func (c *Connector) inFlight() int64 {
	return int64(c.conns.n()) + c.egress.InFlight()
}

// detachTimeout bounds one detach request.
const detachTimeout = 5 * time.Second

// AttachedNodes returns the ids of the mesh nodes the connector is
// attached to now, sorted.
func (c *Connector) AttachedNodes() []string {
	var ids []string
	c.attached.Range(func(_, v any) bool { ids = append(ids, v.(*meshLink).nodeID); return true })
	slices.Sort(ids)
	return ids
}

// jitter10 spreads d by ±10%.
func jitter10(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1) // ±10%, unlike backoff.Jitter's [d/2, d]
}

// boolCmp orders false before true.
func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// attachedURLs returns the URLs of the nodes with a running attachment.
func (c *Connector) attachedURLs() []string {
	c.mmu.Lock()
	defer c.mmu.Unlock()
	out := make([]string, 0, len(c.runs))
	for u, r := range c.runs {
		if !r.retiring {
			out = append(out, u)
		}
	}
	return out
}
