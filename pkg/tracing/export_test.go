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

// Batcher is the batch span processor, for tests of its queue and timer.
type Batcher = batcher

// NewBatcher starts the batch processor of exp with cfg's OTEL_BSP_*
// settings.
func NewBatcher(exp sdktrace.SpanExporter, cfg Config) *Batcher { return newBatcher(exp, cfg) }
