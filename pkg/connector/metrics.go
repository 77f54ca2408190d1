package connector

import (
	"encoding/json"
	"maps"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/postern/postern/pkg/wgnet"
)

func defaultBind() conn.Bind { return wgnet.NewDialBind() }

var descCarrier = prometheus.NewDesc("postern_connector_carrier",
	"1 for the carrier (udp or stream) in use to each attached mesh node.", []string{"mesh_node", "carrier"}, nil)

// carrierCollector reports the carrier of every attached mesh node at
// scrape time.
type carrierCollector struct{ c *Connector }

func (cc carrierCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descCarrier }

func (cc carrierCollector) Collect(ch chan<- prometheus.Metric) {
	cc.c.attached.Range(func(_, v any) bool {
		l := v.(*meshLink)
		ch <- prometheus.MustNewConstMetric(descCarrier, prometheus.GaugeValue, 1, l.nodeID, string(l.carrierNow()))
		return true
	})
}

var descRTT = prometheus.NewDesc("postern_connector_mesh_rtt_seconds",
	"Measured round-trip time (fastest HTTPS ping) to each reachable mesh node.", []string{"node"}, nil)

// rttCollector reports the last measured RTT of every reachable mesh node
// at scrape time.
type rttCollector struct{ c *Connector }

func (rc rttCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descRTT }

func (rc rttCollector) Collect(ch chan<- prometheus.Metric) {
	names := rc.c.nodeNames()
	for u, d := range rc.c.rttSnapshot() {
		if d == unreachable {
			continue
		}
		name := names[u]
		if name == "" {
			name = u
		}
		ch <- prometheus.MustNewConstMetric(descRTT, prometheus.GaugeValue, d.Seconds(), name)
	}
}

// rttSnapshot returns a copy of the last measurement, by mesh URL.
func (c *Connector) rttSnapshot() map[string]time.Duration {
	c.mmu.Lock()
	defer c.mmu.Unlock()
	return maps.Clone(c.rtts)
}

// nodeNames maps mesh URLs to node ids, as far as they are known.
func (c *Connector) nodeNames() map[string]string {
	c.mmu.Lock()
	names := maps.Clone(c.alias)
	c.mmu.Unlock()
	for _, n := range c.State().Nodes {
		names[n.URL] = n.ID
	}
	return names
}

func (c *Connector) registerMetrics() {
	c.cfg.Registry.MustRegister(carrierCollector{c}, rttCollector{c},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "postern_connector_attached_mesh_nodes",
			Help: "Mesh nodes this connector is attached to."}, func() float64 { return float64(c.nAttached.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "postern_connector_tunnel_peers",
			Help: "WireGuard peers of this connector."}, func() float64 { return float64(len(c.node.Peers())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "postern_connector_last_handshake_age_seconds",
			Help: "Age of the most recent WireGuard handshake with any mesh node (-1 if none)."}, func() float64 {
			last := c.lastHandshake()
			if last.IsZero() {
				return -1
			}
			return c.cfg.Now().Sub(last).Seconds()
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "postern_connector_last_handshake_timestamp_seconds",
			Help: "Unix time of the most recent WireGuard handshake with any mesh node (0 if none); alert on time() minus it."}, func() float64 {
			last := c.lastHandshake()
			if last.IsZero() {
				return 0
			}
			return float64(last.UnixNano()) / 1e9
		}),
	)
}

// lastHandshake returns the most recent WireGuard handshake with any peer.
func (c *Connector) lastHandshake() time.Time {
	var last time.Time
	for _, p := range c.node.Peers() {
		if p.LastHandshake.After(last) {
			last = p.LastHandshake
		}
	}
	return last
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
