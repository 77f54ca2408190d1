package meshnode

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/postern/postern/pkg/pool"
	"github.com/postern/postern/pkg/streambind"
)

// Status is what the admin endpoint's /status answers.
type Status struct {
	Node        string            `json:"node"`
	Region      string            `json:"region"`
	PublicKey   string            `json:"public_key"`
	TunnelAddr  string            `json:"tunnel_addr"`
	WGPort      uint16            `json:"wg_port"`
	CatalogHash string            `json:"catalog_hash"`
	Apps        int               `json:"apps"`
	Connectors  []ConnectorStatus `json:"connectors"`
	// Streams is the number of open stream carriers.
	Streams int `json:"streams"`
	// Mesh is the cluster as this node sees it; nil for a lone node.
	Mesh *MeshStatus `json:"mesh,omitempty"`
	// AssertionIssuer and AssertionKeys are what backends verify identity
	// assertions with: the mesh's issuer and the keys this node serves at
	// /.postern/jwks.json (every node's); empty without sign-in.
	AssertionIssuer string               `json:"assertion_issuer,omitempty"`
	AssertionKeys   []AssertionKeyStatus `json:"assertion_keys,omitempty"`
}

// AssertionKeyStatus is one node key of the mesh's assertion JWKS.
type AssertionKeyStatus struct {
	Node   string `json:"node"`
	Region string `json:"region"`
	KeyID  string `json:"kid"`
	// Present is false for a departed node (or a rotated key) kept so
	// that its last assertions still verify.
	Present bool      `json:"present"`
	Expires time.Time `json:"expires"`
}

// ConnectorStatus is one connector attached to this node in Status: its
// pool state and the carrier its WireGuard packets use.
type ConnectorStatus struct {
	pool.Status
	// RTTMs is Status.RTT in milliseconds, as the status page prints
	// every RTT.
	RTTMs float64 `json:"rtt_ms"`
	// Carrier is "udp" or "stream", as the connector's latest
	// authenticated packet arrived; empty before the first one.
	Carrier string `json:"carrier"`
}

// carriers maps tunnel addresses to the carrier each peer uses now.
func (n *Node) carriers() map[netip.Addr]string {
	m := make(map[netip.Addr]string)
	for _, p := range n.wg.Peers() {
		if c := carrierOf(p.Endpoint); c != "" {
			m[p.Addr] = c
		}
	}
	return m
}

// carrierOf names the carrier of a peer endpoint as WireGuard prints it.
func carrierOf(endpoint string) string {
	switch {
	case streambind.IsStreamEndpoint(endpoint):
		return string(streambind.CarrierStream)
	case endpoint != "":
		return string(streambind.CarrierUDP)
	}
	return ""
}

// connectorStatuses returns the pool's connectors with their carriers.
func (n *Node) connectorStatuses() []ConnectorStatus {
	carriers := n.carriers()
	out := []ConnectorStatus{}
	for _, s := range n.pool.Statuses() {
		out = append(out, connectorStatus(s, carriers[s.TunnelAddr]))
	}
	return out
}

func connectorStatus(s pool.Status, carrier string) ConnectorStatus {
	return ConnectorStatus{Status: s, RTTMs: ms(s.RTT), Carrier: carrier}
}

// Status returns the node's status.
func (n *Node) Status() Status {
	cat := n.catalog.Current()
	st := Status{Node: n.cfg.ID, Region: n.cfg.Region, PublicKey: n.wg.PublicKey().String(),
		TunnelAddr: n.wg.Addr().String(), WGPort: n.wg.ListenPort(), CatalogHash: cat.Hash(),
		Apps: len(cat.Apps()), Connectors: n.connectorStatuses(), Streams: n.stream.Stats().Streams}
	if n.mesh != nil {
		st.Mesh = n.mesh.status()
	}
	if n.assertKeys != nil {
		st.AssertionIssuer = n.assertIssuer
		for _, k := range n.assertKeys.Keys() {
			st.AssertionKeys = append(st.AssertionKeys, AssertionKeyStatus{Node: k.NodeID, Region: k.Region, KeyID: k.KeyID,
				Present: k.Present, Expires: k.Expires})
		}
	}
	return st
}

// AdminHandler serves /healthz (live), /readyz (ready, see Readiness),
// /status, /routes/explain and /metrics; meshd exposes it on a loopback
// address only.
func (n *Node) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	// /healthz is liveness: the process serves (also while it drains).
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	// /readyz is readiness: whether load balancers should send users here.
	mux.HandleFunc("GET /readyz", n.serveReadyz)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Accept")
		if wantsStatusHTML(r) {
			n.serveStatusHTML(w)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(n.Status())
	})
	mux.HandleFunc("GET /routes/explain", func(w http.ResponseWriter, r *http.Request) {
		app := r.URL.Query().Get("app")
		ex, err := n.Explain(app)
		switch {
		case errors.Is(err, ErrUnknownApp):
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		if r.URL.Query().Get("format") == "text" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_ = WriteExplain(w, ex)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(ex)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.cfg.Registry, promhttp.HandlerOpts{}))
	return mux
}

var (
	descPeers       = prometheus.NewDesc("postern_mesh_tunnel_peers", "WireGuard peers of this mesh node, by kind (connector or mesh node).", []string{"kind"}, nil)
	descOnline      = prometheus.NewDesc("postern_mesh_connectors_online", "Live connectors attached to this node, by group.", []string{"group"}, nil)
	descHandshake   = prometheus.NewDesc("postern_mesh_peer_last_handshake_age_seconds", "Age of the last WireGuard handshake with each connector.", []string{"connector", "group"}, nil)
	descHandshakeAt = prometheus.NewDesc("postern_mesh_peer_last_handshake_timestamp_seconds", "Unix time of the last WireGuard handshake with each connector; alert on time() minus it.", []string{"connector", "group"}, nil)
	descCarrier     = prometheus.NewDesc("postern_mesh_connector_carrier", "1 for the carrier (udp or stream) each connector's WireGuard packets use.", []string{"connector", "group", "carrier"}, nil)
	descStreams     = prometheus.NewDesc("postern_mesh_stream_carriers", "Open stream carriers.", nil, nil)
	descCut         = prometheus.NewDesc("postern_mesh_stream_carriers_cut_total", "Stream carriers cut off for breaking the protocol.", nil, nil)
	descDropped     = prometheus.NewDesc("postern_mesh_stream_packets_dropped_total", "Packets dropped because a stream carrier's send queue was full.", nil, nil)
	descRevoked     = prometheus.NewDesc("postern_revocation_entries", "Entries of the deny-list held by this node, by kind (session, user, connector).", []string{"kind"}, nil)
	descCatLoaded   = prometheus.NewDesc("postern_catalog_loaded_timestamp_seconds", "Unix time when the catalogue in force was loaded (the last successful reload that changed it).", nil, nil)
	descCatFailed   = prometheus.NewDesc("postern_catalog_reload_failures_total", "Catalogue reloads that failed (unreadable or invalid file); the catalogue in force stays.", nil, nil)
	descCredExpiry  = prometheus.NewDesc("postern_mesh_node_credential_expiry_timestamp_seconds", "Unix time at which this node's node credential expires: past it the other nodes ignore it and backends stop trusting its assertions; mint a new one before (meshd node credential).", nil, nil)
	descCatStale    = prometheus.NewDesc("postern_catalog_reload_failing", "1 while the catalogue file holds something that failed to load, 0 when the file is the catalogue in force.", nil, nil)
)

// statusCollector reports tunnel and pool state at scrape time.
type statusCollector struct{ n *Node }

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPeers
	ch <- descOnline
	ch <- descHandshake
	ch <- descHandshakeAt
	ch <- descCarrier
	ch <- descStreams
	ch <- descCut
	ch <- descDropped
	ch <- descRevoked
	ch <- descCatLoaded
	ch <- descCatFailed
	ch <- descCatStale
	ch <- descCredExpiry
	ch <- descCertExpiry
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	peers := c.n.wg.Peers()
	meshPeers := 0
	if c.n.mesh != nil {
		for _, p := range peers {
			if _, ok := c.n.mesh.isMeshNode(p.Addr); ok {
				meshPeers++
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(len(peers)-meshPeers), "connector")
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(meshPeers), "mesh")
	online := map[string]int{}
	for _, g := range c.n.catalog.Current().Groups() {
		online[g.ID] = 0
	}
	statuses := c.n.pool.Statuses()
	byAddr := map[string]pool.Status{}
	for _, s := range statuses {
		if s.Alive {
			online[s.Group]++
		}
		byAddr[s.TunnelAddr.String()] = s
	}
	for g, v := range online {
		ch <- prometheus.MustNewConstMetric(descOnline, prometheus.GaugeValue, float64(v), g)
	}
	for _, p := range peers {
		s, ok := byAddr[p.Addr.String()]
		if !ok {
			continue
		}
		if carrier := carrierOf(p.Endpoint); carrier != "" {
			ch <- prometheus.MustNewConstMetric(descCarrier, prometheus.GaugeValue, 1, s.ID, s.Group, carrier)
		}
		if p.LastHandshake.IsZero() {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descHandshake, prometheus.GaugeValue, c.n.cfg.Now().Sub(p.LastHandshake).Seconds(), s.ID, s.Group)
		ch <- prometheus.MustNewConstMetric(descHandshakeAt, prometheus.GaugeValue, float64(p.LastHandshake.UnixNano())/1e9, s.ID, s.Group)
	}
	st := c.n.stream.Stats()
	ch <- prometheus.MustNewConstMetric(descStreams, prometheus.GaugeValue, float64(st.Streams))
	ch <- prometheus.MustNewConstMetric(descCut, prometheus.CounterValue, float64(st.Cut))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(st.Dropped))
	for kind, n := range c.n.revoked.Counts() {
		ch <- prometheus.MustNewConstMetric(descRevoked, prometheus.GaugeValue, float64(n), string(kind))
	}
	cs := c.n.catalog.Stats()
	failing := 0.0
	if cs.Failing {
		failing = 1
	}
	ch <- prometheus.MustNewConstMetric(descCatLoaded, prometheus.GaugeValue, float64(cs.LoadedAt.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(descCatFailed, prometheus.CounterValue, float64(cs.Failures))
	ch <- prometheus.MustNewConstMetric(descCatStale, prometheus.GaugeValue, failing)
	if exp := c.n.cfg.NodeCredential.Expires; !c.n.cfg.NodeCredential.IsZero() {
		ch <- prometheus.MustNewConstMetric(descCredExpiry, prometheus.GaugeValue, float64(exp.Unix()))
	}
	c.n.collectCertExpiries(ch)
}
