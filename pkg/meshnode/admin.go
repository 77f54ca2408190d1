package meshnode

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/postern/postern/pkg/pool"
)

// Status is what the admin endpoint's /status answers.
type Status struct {
	Node        string        `json:"node"`
	Region      string        `json:"region"`
	PublicKey   string        `json:"public_key"`
	TunnelAddr  string        `json:"tunnel_addr"`
	WGPort      uint16        `json:"wg_port"`
	CatalogHash string        `json:"catalog_hash"`
	Apps        int           `json:"apps"`
	Connectors  []pool.Status `json:"connectors"`
}

// Status returns the node's status.
func (n *Node) Status() Status {
	cat := n.catalog.Current()
	return Status{Node: n.cfg.ID, Region: n.cfg.Region, PublicKey: n.wg.PublicKey().String(),
		TunnelAddr: n.wg.Addr().String(), WGPort: n.wg.ListenPort(), CatalogHash: cat.Hash(),
		Apps: len(cat.Apps()), Connectors: n.pool.Statuses()}
}

// AdminHandler serves /healthz, /status and /metrics; meshd exposes it on
// a loopback address only.
func (n *Node) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(n.Status())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.cfg.Registry, promhttp.HandlerOpts{}))
	return mux
}

var (
	descPeers     = prometheus.NewDesc("postern_mesh_tunnel_peers", "WireGuard peers of this mesh node.", nil, nil)
	descOnline    = prometheus.NewDesc("postern_mesh_connectors_online", "Live connectors attached to this node, by group.", []string{"group"}, nil)
	descHandshake = prometheus.NewDesc("postern_mesh_peer_last_handshake_age_seconds", "Age of the last WireGuard handshake with each connector.", []string{"connector", "group"}, nil)
)

// statusCollector reports tunnel and pool state at scrape time.
type statusCollector struct{ n *Node }

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPeers
	ch <- descOnline
	ch <- descHandshake
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	peers := c.n.wg.Peers()
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(len(peers)))
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
		if !ok || p.LastHandshake.IsZero() {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descHandshake, prometheus.GaugeValue, time.Since(p.LastHandshake).Seconds(), s.ID, s.Group)
	}
}
