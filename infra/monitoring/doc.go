// Package monitoring holds no code: its test checks the Prometheus alert
// rules (prometheus/alerts.yml) and the Grafana dashboard
// (grafana/postern.json) of this directory. It is its own module so that
// the Prometheus rule and PromQL parsers, a heavy dependency, stay out of
// the product's module graph.
package monitoring
