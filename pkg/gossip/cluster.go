package gossip

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/coordinate"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/revoke"
)

// Retention of what the cluster remembers about other nodes.
const (
	failedMemory   = time.Hour        // dead members are retried and listed this long
	leaveMemory    = 30 * time.Second // a leave announcement explains a death this long
	tombstoneTTL   = 2 * time.Minute  // removed attachments are remembered this long
	updateTimeout  = time.Second      // wait for a metadata broadcast to go out
	leaveSendLimit = 16               // nodes told of a leave over TCP
)

// nodeInfo is what we know of one member.
type nodeInfo struct {
	meta    Meta
	cred    authority.NodeCredential // verified, from its metadata
	addr    string
	state   State
	changed time.Time     // when state last changed
	lastRTT time.Duration // last probe RTT
}

// Cluster is this node's view of, and voice in, the mesh nodes' cluster.
// It is safe for concurrent use.
type Cluster struct {
	cfg     Config
	timing  Timing
	log     *slog.Logger
	ml      *memberlist.Memberlist
	queue   *memberlist.TransmitLimitedQueue
	coord   *coordinate.Client
	metrics *metrics // nil without a Registerer
	creds   credCache
	changes chan struct{}
	done    chan struct{}

	metaBytes atomic.Pointer[[]byte] // encoded own metadata, served to memberlist
	numAlive  atomic.Int32           // live members including us, for retransmit limits

	closeOnce sync.Once
	closeErr  error
	runWG     sync.WaitGroup // Run calls in progress

	metaMu    sync.Mutex // serialises UpdateMeta and guards the following
	metaDirty bool       // a rate-limited change is not yet announced
	metaSent  time.Time  // when metadata was last announced

	mu          sync.Mutex // guards the following
	meta        Meta
	nodes       map[string]*nodeInfo
	coords      map[string]*coordinate.Coordinate
	leaving     map[string]time.Time // leave announcements by node id
	entries     map[attachKey]*entry
	lastVersion int64
	closed      bool
	left        bool
}

// New validates cfg and creates the cluster's memberlist, listening but not
// joined to anyone.
func New(cfg Config) (*Cluster, error) {
	t := cfg.Timing
	if t == (Timing{}) {
		t = DefaultTiming()
	}
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("gossip: new: %w", err)
	}
	if len(cfg.Keys) == 0 && !cfg.Insecure {
		return nil, fmt.Errorf("gossip: new: no gossip keys and not Insecure, refusing to gossip unencrypted: %w", ErrInvalidConfig)
	}
	for i, k := range cfg.Keys {
		if !validKeyLen(len(k)) {
			return nil, fmt.Errorf("gossip: new: key %d is %d bytes, want 16, 24 or 32: %w", i, len(k), ErrInvalidConfig)
		}
	}
	if err := checkIdentity(cfg); err != nil {
		return nil, fmt.Errorf("gossip: new: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "gossip", "node_id", cfg.Meta.ID)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	coordClient, err := coordinate.NewClient(coordinate.DefaultConfig())
	if err != nil {
		return nil, fmt.Errorf("gossip: new: coordinate client: %w", err)
	}
	c := &Cluster{
		cfg: cfg, timing: t, log: logger, coord: coordClient,
		changes: make(chan struct{}, 1), done: make(chan struct{}),
		meta: cfg.Meta, nodes: map[string]*nodeInfo{}, coords: map[string]*coordinate.Coordinate{},
		leaving: map[string]time.Time{}, entries: map[attachKey]*entry{},
		creds: credCache{m: map[string]authority.NodeCredential{}, metas: map[string]verifiedMeta{}},
	}
	c.meta.WGKey = cfg.Identity.Credential.WGKey
	metaBytes, err := c.encodeMeta(c.meta)
	if err != nil {
		return nil, fmt.Errorf("gossip: new: %w", err)
	}
	c.metaBytes.Store(&metaBytes)
	c.numAlive.Store(1)
	c.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(c.numAlive.Load()) },
		RetransmitMult: t.RetransmitMult,
	}
	if cfg.Registerer != nil {
		if c.metrics, err = newMetrics(cfg.Registerer); err != nil {
			return nil, fmt.Errorf("gossip: new: %w", err)
		}
	}
	mc, err := cfg.memberlistConfig(t)
	if err != nil {
		return nil, fmt.Errorf("gossip: new: %w", err)
	}
	d := &delegate{c: c}
	mc.Delegate, mc.Events, mc.Ping, mc.Alive = d, d, d, d
	mc.Logger = log.New(&logWriter{log: logger}, "", 0)
	if c.ml, err = memberlist.Create(mc); err != nil {
		c.metrics.unregister(cfg.Registerer)
		return nil, fmt.Errorf("gossip: new: create memberlist: %w", err)
	}
	c.metaSent = c.cfg.Now()
	logger.Info("gossip listening", "addr", c.Addr(), "region", cfg.Meta.Region, "encrypted", len(cfg.Keys) > 0)
	return c, nil
}

// LocalID returns our node id.
func (c *Cluster) LocalID() string { return c.cfg.Meta.ID }

// Addr returns our gossip address, "host:port".
func (c *Cluster) Addr() string { return c.ml.LocalNode().Address() }

// Changes returns a channel that receives a value, coalesced, after any
// change of membership, metadata or attachments.
func (c *Cluster) Changes() <-chan struct{} { return c.changes }

// notify signals Changes without blocking.
func (c *Cluster) notify() {
	select {
	case c.changes <- struct{}{}:
	default:
	}
}

// Join contacts the configured and discovered seeds and returns how many
// were joined. It fails with ErrJoin when there are seeds and none
// answers; no seeds means (0, nil): the first node of a cluster.
func (c *Cluster) Join(ctx context.Context) (int, error) {
	if c.isClosed() {
		return 0, fmt.Errorf("gossip: join: %w", ErrClosed)
	}
	seeds := c.seeds(ctx)
	if len(seeds) == 0 {
		return 0, nil
	}
	n, err := c.joinAddrs(ctx, seeds)
	if n == 0 {
		return 0, fmt.Errorf("gossip: join %s: %w (wrong gossip key or cluster label, or seeds down): %s",
			strings.Join(seeds, ","), ErrJoin, joinCauses(err))
	}
	return n, nil
}

// seeds returns the configured seeds and those Discover finds, without
// this node's own address.
func (c *Cluster) seeds(ctx context.Context) []string {
	out := slices.Clone(c.cfg.Seeds)
	if c.cfg.Discover != nil {
		found, err := c.cfg.Discover(ctx)
		if err != nil {
			c.log.Warn("gossip_discovery_failed", "error", err.Error(), "found", len(found))
		}
		self := c.ml.LocalNode().Address()
		for _, a := range found {
			if a != self {
				out = append(out, a)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// joinCauses renders memberlist's multi-error on one line.
func joinCauses(err error) string {
	if err == nil {
		return "no answer"
	}
	if m, ok := err.(interface{ WrappedErrors() []error }); ok {
		parts := make([]string, 0, len(m.WrappedErrors()))
		for _, e := range m.WrappedErrors() {
			parts = append(parts, e.Error())
		}
		return strings.Join(parts, "; ")
	}
	return err.Error()
}

// joinAddrs runs memberlist's Join in a goroutine so that ctx can abandon
// it (memberlist bounds each attempt by TCPTimeout).
func (c *Cluster) joinAddrs(ctx context.Context, addrs []string) (int, error) {
	type result struct {
		n   int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		n, err := c.ml.Join(addrs)
		ch <- result{n, err}
	}()
	select {
	case r := <-ch:
		return r.n, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Run does the background work until ctx ends or the cluster is closed:
// the rejoin loop (every RejoinInterval it contacts members that failed in
// the last hour, and the seeds when we are alone; this heals a partition
// without an operator, like serf's reconnect), and every RefreshInterval it
// flushes rate-limited metadata, re-broadcasts attachments whose in-flight
// counts changed, drops expired tombstones and refreshes metrics.
func (c *Cluster) Run(ctx context.Context) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.runWG.Add(1)
	c.mu.Unlock()
	defer c.runWG.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	rejoin := time.NewTicker(c.timing.RejoinInterval)
	defer rejoin.Stop()
	refresh := time.NewTicker(c.timing.RefreshInterval)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-rejoin.C:
			c.rejoin(ctx)
		case <-refresh.C:
			c.refresh()
		}
	}
}

// rejoin contacts failed members and, when alone, the seeds.
func (c *Cluster) rejoin(ctx context.Context) {
	addrs, alone := c.rejoinCandidates(c.cfg.Now())
	if alone {
		addrs = append(addrs, c.seeds(ctx)...)
	}
	if len(addrs) == 0 {
		return
	}
	n, err := c.joinAddrs(ctx, addrs)
	if n > 0 {
		c.log.Info("gossip rejoined", "contacted", n, "candidates", len(addrs))
	} else if err != nil {
		c.log.Debug("gossip rejoin failed", "candidates", len(addrs), "err", err)
	}
}

// rejoinCandidates lists the addresses of members that failed (not left)
// within failedMemory and are not alive under another entry, and reports
// whether no other member is alive (then the seeds are contacted too).
func (c *Cluster) rejoinCandidates(now time.Time) (addrs []string, alone bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	alive := map[string]bool{}
	others := 0
	for id, n := range c.nodes {
		if n.state == StateAlive && id != c.meta.ID {
			alive[n.addr] = true
			others++
		}
	}
	var out []string
	for id, n := range c.nodes {
		if id != c.meta.ID && n.state == StateDead && now.Sub(n.changed) < failedMemory && !alive[n.addr] {
			out = append(out, n.addr)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), others == 0
}

// refresh is Run's periodic housekeeping.
func (c *Cluster) refresh() {
	c.expireCredentials(c.cfg.Now())
	c.flushMeta()
	c.rebroadcastDirty()
	c.gc(c.cfg.Now())
	c.updateMetrics()
}

// expireCredentials declares dead the members whose node credential has
// expired: memberlist still hears them, but we no longer believe them.
func (c *Cluster) expireCredentials(now time.Time) {
	c.mu.Lock()
	var expired []string
	for id, n := range c.nodes {
		if id != c.meta.ID && n.state == StateAlive && !now.Before(n.cred.Expires) {
			n.state, n.changed = StateDead, now
			expired = append(expired, id)
		}
	}
	if len(expired) > 0 {
		c.countAliveLocked()
	}
	c.mu.Unlock()
	for _, id := range expired {
		c.log.Warn("gossip member credential expired; ignoring it until it presents a new one", "peer", id)
	}
	if len(expired) > 0 {
		c.notify()
	}
	if own := c.cfg.Identity.Credential.Expires; own.Sub(now) < 7*24*time.Hour {
		c.log.Warn("gossip: this node's credential expires soon; mint a new one with \"meshd node credential\"", "expires", own)
	}
}

// checkIdentity checks that cfg's identity is complete and its own.
func checkIdentity(cfg Config) error {
	id := cfg.Identity
	switch {
	case cfg.Verifier == nil:
		return fmt.Errorf("no Verifier to check other nodes' credentials: %w", ErrInvalidConfig)
	case id.Credential.IsZero() || id.Key.IsZero():
		return fmt.Errorf("no node credential or node key (mint one with \"meshd node credential\"): %w", ErrInvalidConfig)
	case !id.Key.Public().Equal(id.Credential.NodeKey):
		return fmt.Errorf("the node credential names another node key than this node's: %w", ErrInvalidConfig)
	}
	if _, err := cfg.Verifier.VerifyNodeCredential(id.Credential.Bytes()); err != nil {
		return fmt.Errorf("own node credential: %w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// UpdateMeta applies f to a copy of our metadata and announces the result.
// The ID and Boot cannot change. A change of Load alone within
// MetaMinInterval of the last announcement is kept and announced by Run
// later. On error nothing changes.
func (c *Cluster) UpdateMeta(f func(*Meta)) error {
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	if c.isClosed() {
		return fmt.Errorf("gossip: update meta: %w", ErrClosed)
	}
	c.mu.Lock()
	old := c.meta
	c.mu.Unlock()
	m := old
	f(&m)
	if m.ID != old.ID || m.Boot != old.Boot || m.Region != old.Region || m.WGKey != old.WGKey {
		return fmt.Errorf("gossip: update meta: id, region, key and boot cannot change: %w", ErrInvalidArgument)
	}
	b, err := c.encodeMeta(m)
	if err != nil {
		return fmt.Errorf("gossip: update meta: %w", err)
	}
	if m == old {
		return nil
	}
	c.mu.Lock()
	c.meta = m
	c.mu.Unlock()
	c.metaBytes.Store(&b)
	if loadOnly(m, old) && c.cfg.Now().Sub(c.metaSent) < c.timing.MetaMinInterval {
		c.metaDirty = true
		return nil
	}
	c.announceMetaLocked()
	return nil
}

// flushMeta announces a rate-limited metadata change that is due.
func (c *Cluster) flushMeta() {
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	if c.metaDirty && c.cfg.Now().Sub(c.metaSent) >= c.timing.MetaMinInterval && !c.isClosed() {
		c.announceMetaLocked()
	}
}

// announceMetaLocked re-advertises our node; c.metaMu is held. A timeout
// waiting for the broadcast is not an error: the update stays queued and
// push-pull carries it too.
func (c *Cluster) announceMetaLocked() {
	c.metaDirty = false
	c.metaSent = c.cfg.Now()
	if err := c.ml.UpdateNode(updateTimeout); err != nil {
		c.log.Debug("gossip meta update not yet sent", "err", err)
	}
	c.notify()
}

// Members returns every known member sorted by ID, including ourselves
// (alive), with Vivaldi RTT estimates.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	self := c.meta.ID
	out := make([]Member, 0, len(c.nodes)+1)
	out = append(out, Member{Meta: c.meta, State: StateAlive, Addr: c.selfAddrLocked(), HasRTT: true, Credential: c.cfg.Identity.Credential})
	for id, n := range c.nodes {
		if id == self {
			continue
		}
		m := Member{Meta: n.meta, State: n.state, Addr: n.addr, LastProbeRTT: n.lastRTT, Credential: n.cred}
		if co, ok := c.coords[id]; ok {
			m.RTT, m.HasRTT = c.coord.DistanceTo(co), true
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// selfAddrLocked returns our gossip address as recorded from events.
func (c *Cluster) selfAddrLocked() string {
	if n, ok := c.nodes[c.meta.ID]; ok {
		return n.addr
	}
	return ""
}

// EstimateRTT returns the Vivaldi estimate of the RTT to nodeID: our
// coordinate's distance to theirs. It returns (0, true) for ourselves and
// false when we hold no coordinate for nodeID.
func (c *Cluster) EstimateRTT(nodeID string) (time.Duration, bool) {
	if nodeID == c.cfg.Meta.ID {
		return 0, true
	}
	c.mu.Lock()
	co, ok := c.coords[nodeID]
	c.mu.Unlock()
	if !ok {
		return 0, false
	}
	return c.coord.DistanceTo(co), true
}

// TokenUsed broadcasts a used enrolment-token id to the cluster. Ids
// that are empty or longer than 256 bytes are ignored.
func (c *Cluster) TokenUsed(t authority.UsedToken) {
	if t.ID == "" || len(t.ID) > maxTokenIDLen || c.isClosed() {
		return
	}
	msg, err := c.seal(kindTokens, []authority.UsedToken{t})
	if err != nil {
		return
	}
	c.queue.QueueBroadcast(&uniqueBroadcast{msg: msg})
	c.metrics.message("token", "out")
}

// Revoked broadcasts revocations to the cluster, in batches that fit a
// packet. Records that do not validate are dropped by the receivers.
func (c *Cluster) Revoked(recs []revoke.Record) {
	c.broadcastRevocations(recs, "out")
}

func (c *Cluster) broadcastRevocations(recs []revoke.Record, dir string) {
	for len(recs) > 0 && !c.isClosed() {
		n := min(len(recs), maxRevokeBatch)
		msg, err := c.seal(kindRevoke, recs[:n])
		for err == nil && len(msg) > maxMessageBytes && n > 1 {
			n /= 2
			msg, err = c.seal(kindRevoke, recs[:n])
		}
		if err != nil || len(msg) > maxMessageBytes {
			c.log.Warn("gossip revocation too large to broadcast", "subject_kind", recs[0].Kind, "bytes", len(msg))
		} else {
			c.queue.QueueBroadcast(&uniqueBroadcast{msg: msg})
			c.metrics.message("revocation", dir)
		}
		recs = recs[n:]
	}
}

// Leave announces a graceful leave and waits up to timeout for it to go
// out; other nodes then report us as "left". The cluster keeps running
// until Close.
func (c *Cluster) Leave(timeout time.Duration) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("gossip: leave: %w", ErrClosed)
	}
	c.left = true
	boot := c.meta.Boot
	c.mu.Unlock()
	c.announceLeave(boot, timeout/2)
	if err := c.ml.Leave(timeout); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	c.log.Info("gossip left cluster")
	return nil
}

// announceLeave tells live members, over TCP and by gossip, that the
// coming death is a leave.
func (c *Cluster) announceLeave(boot int64, wait time.Duration) {
	msg, err := c.seal(kindLeave, wireLeave{ID: c.cfg.Meta.ID, Boot: boot})
	if err != nil {
		return
	}
	c.queue.QueueBroadcast(&uniqueBroadcast{msg: msg})
	var wg sync.WaitGroup
	for i, n := range c.ml.Members() {
		if i >= leaveSendLimit {
			break
		}
		if n.Name == c.cfg.Meta.ID {
			continue
		}
		wg.Add(1)
		go func(n *memberlist.Node) {
			defer wg.Done()
			if err := c.ml.SendReliable(n, msg); err != nil {
				c.log.Debug("gossip leave notice not sent", "peer", n.Name, "err", err)
			}
		}(n)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
	}
}

// Close shuts the cluster down without a leave (others see us dead),
// stops Run and waits for it. It is idempotent.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.done)
		if err := c.ml.Shutdown(); err != nil {
			c.closeErr = fmt.Errorf("gossip: close: %w", err)
		}
		c.runWG.Wait()
		c.metrics.unregister(c.cfg.Registerer)
	})
	return c.closeErr
}

// isClosed reports whether Close was called.
func (c *Cluster) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// logWriter adapts memberlist's log.Logger output to slog: "[DEBUG]" and
// "[INFO]" lines at debug, "[WARN]" and "[ERR]" at warn.
type logWriter struct {
	log *slog.Logger
}

var _ io.Writer = (*logWriter)(nil)

// Write logs one memberlist line.
func (w *logWriter) Write(p []byte) (int, error) {
	s := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	if strings.HasPrefix(s, "[WARN]") || strings.HasPrefix(s, "[ERR]") {
		level = slog.LevelWarn
	}
	w.log.Log(context.Background(), level, "memberlist", "msg_text", s)
	return len(p), nil
}
