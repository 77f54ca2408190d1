package tracing

import (
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// NewExporter is the exporter of cfg with retry delays from lo to hi, for
// tests that retry without waiting seconds.
func NewExporter(cfg Config, lo, hi time.Duration) (sdktrace.SpanExporter, error) {
	e, err := newExporter(cfg)
	if err != nil {
		return nil, err
	}
	e.retry = retryDelays{min: lo, max: hi}
	return e, nil
}

// ExportAttempts is the bound on tries of one batch.
const ExportAttempts = exportAttempts
