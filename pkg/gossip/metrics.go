package gossip

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the cluster's Prometheus collectors. A nil *metrics records
// nothing.
type metrics struct {
	members     *prometheus.GaugeVec
	messages    *prometheus.CounterVec
	attachments prometheus.Gauge
	rtt         prometheus.Histogram
}

// newMetrics creates and registers the collectors.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "postern_gossip_members", Help: "Known mesh nodes by state, including this one.",
		}, []string{"state"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_gossip_messages_total", Help: "Gossip messages by kind and direction (in, out, relay).",
		}, []string{"kind", "dir"}),
		attachments: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "postern_gossip_attachments", Help: "Connector attachments visible through live mesh nodes.",
		}),
		rtt: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "postern_gossip_rtt_seconds", Help: "RTT of memberlist probes to other mesh nodes.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12),
		}),
	}
	var done []prometheus.Collector
	for _, col := range m.collectors() {
		if err := reg.Register(col); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return nil, fmt.Errorf("register metrics: %w", err)
		}
		done = append(done, col)
	}
	return m, nil
}

// collectors lists the collectors.
func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.members, m.messages, m.attachments, m.rtt}
}

// unregister removes the collectors from reg.
func (m *metrics) unregister(reg prometheus.Registerer) {
	if m == nil || reg == nil {
		return
	}
	for _, col := range m.collectors() {
		reg.Unregister(col)
	}
}

// message counts one message.
func (m *metrics) message(kind, dir string) {
	if m != nil {
		m.messages.WithLabelValues(kind, dir).Inc()
	}
}

// observeRTT records a probe RTT.
func (m *metrics) observeRTT(d time.Duration) {
	if m != nil {
		m.rtt.Observe(d.Seconds())
	}
}

// updateMetrics refreshes the gauges.
func (c *Cluster) updateMetrics() {
	if c.metrics == nil {
		return
	}
	counts := map[State]int{StateAlive: 0, StateSuspect: 0, StateDead: 0, StateLeft: 0}
	for _, m := range c.Members() {
		counts[m.State]++
	}
	for s, n := range counts {
		c.metrics.members.WithLabelValues(string(s)).Set(float64(n))
	}
	c.metrics.attachments.Set(float64(len(c.Attachments())))
}
