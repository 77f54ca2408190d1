package edge

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	bytes     *prometheus.CounterVec
	cut       *prometheus.CounterVec
	revoked   *prometheus.CounterVec
	decisions *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_mesh_requests_total", Help: "Requests answered at the edge, by app and status code.",
		}, []string{"app", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "postern_mesh_request_duration_seconds", Help: "Time from a request's arrival to the end of its response, by app and status code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
		}, []string{"app", "code"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_mesh_response_bytes_total", Help: "Response body bytes sent to clients, by app.",
		}, []string{"app"}),
		cut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_mesh_responses_truncated_total",
			Help: "Responses cut mid-body after their status was sent, by app and by the side that cut them (upstream: the connector, relay node or backend; client: the client went away).",
		}, []string{"app", "side"}),
		revoked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_edge_revoked_refusals_total", Help: "Identities refused because their session or user was revoked, by kind (session, user) and where (cookie, handoff, bearer, cli, tcp_stream: an open TCP stream cut).",
		}, []string{"kind", "where"}),
	}
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_auth_decisions_total", Help: "Access decisions at the edge for requests to known apps, by app, result (allow, deny, sign_in) and reason.",
	}, []string{"app", "result", "reason"})
	reg.MustRegister(m.requests, m.duration, m.bytes, m.cut, m.revoked, m.decisions)
	return m
}

// decided counts an access decision.
func (m *metrics) decided(app, result, reason string) {
	if m != nil {
		m.decisions.WithLabelValues(app, result, reason).Inc()
	}
}

// revokedRefusal counts an app token refused as revoked.
func (m *metrics) revokedRefusal(kind, where string) {
	if m != nil {
		m.revoked.WithLabelValues(kind, where).Inc()
	}
}

// observe counts one answered request; truncated names the side that cut
// its response mid-body, or is empty.
func (m *metrics) observe(app string, status int, d time.Duration, bytes int64, truncated string) {
	if m == nil {
		return
	}
	code := strconv.Itoa(status)
	m.requests.WithLabelValues(app, code).Inc()
	m.duration.WithLabelValues(app, code).Observe(d.Seconds())
	m.bytes.WithLabelValues(app).Add(float64(bytes))
	if truncated != "" {
		m.cut.WithLabelValues(app, truncated).Inc()
	}
}
