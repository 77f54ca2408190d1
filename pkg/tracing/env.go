package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// DefaultEndpoint is the traces URL of OTEL_TRACES_EXPORTER=otlp without
// an endpoint variable: a collector on the same host.
const DefaultEndpoint = "http://localhost:4318/v1/traces"

// FromEnv reads the standard OpenTelemetry variables through getenv
// (os.Getenv in a main):
//
//   - OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none: off.
//
//   - OTEL_TRACES_EXPORTER=otlp: on, at the endpoint below or
//     DefaultEndpoint. Unset: on only when an endpoint variable is set
//     (tracing is off by default, unlike the OpenTelemetry SDK's default).
//     Any other exporter is an error.
//
//   - OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is), or
//     OTEL_EXPORTER_OTLP_ENDPOINT (with /v1/traces appended).
//
//   - OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / OTEL_EXPORTER_OTLP_PROTOCOL:
//     only http/protobuf (the default) is supported.
//
//   - OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG: always_on,
//     always_off, traceidratio, parentbased_always_on (the default),
//     parentbased_always_off, parentbased_traceidratio; the ratio is in
//     [0, 1], default 1.
//
//   - OTEL_SERVICE_NAME: the service.name.
//
//   - OTEL_BSP_SCHEDULE_DELAY: milliseconds a finished span waits to be
//     exported (default 5000); OTEL_BSP_MAX_QUEUE_SIZE: spans waiting at
//     most, more are dropped (default 2048); OTEL_BSP_MAX_EXPORT_BATCH_SIZE:
//     spans per export at most (default 512, capped at the queue size);
//     OTEL_BSP_EXPORT_TIMEOUT: milliseconds the batch processor waits for
//     one export (default 30000).
//
//   - OTEL_EXPORTER_OTLP_HEADERS: key=value pairs separated by commas,
//     values percent-encoded (the W3C baggage form), sent with every
//     export.
//
//   - OTEL_EXPORTER_OTLP_TIMEOUT: milliseconds one export may take, its
//     retries included (default 10000).
//
//   - OTEL_EXPORTER_OTLP_COMPRESSION: gzip or none (the default).
//
//   - OTEL_EXPORTER_OTLP_CERTIFICATE, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE
//     and OTEL_EXPORTER_OTLP_CLIENT_KEY: PEM files of the trusted
//     authorities and of the client certificate and key.
//
// Each OTEL_EXPORTER_OTLP_X above also has its OTEL_EXPORTER_OTLP_TRACES_X
// form, which wins. The resource reads OTEL_RESOURCE_ATTRIBUTES.
// Errors name the variable and never echo a header value.
func FromEnv(getenv func(string) string) (Config, error) {
	var cfg Config
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return cfg, nil
	}
	endpoint := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
	if endpoint == "" {
		if base := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")); base != "" {
			endpoint = strings.TrimSuffix(base, "/") + "/v1/traces"
		}
	}
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return cfg, nil
	case "":
		if endpoint == "" {
			return cfg, nil
		}
	case "otlp":
		if endpoint == "" {
			endpoint = DefaultEndpoint
		}
	default:
		return cfg, fmt.Errorf("tracing: OTEL_TRACES_EXPORTER %q: only otlp and none are supported", exp)
	}
	if err := checkEndpoint(endpoint); err != nil {
		return cfg, err
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := strings.TrimSpace(getenv(k)); p != "" {
			if p != "http/protobuf" {
				return cfg, fmt.Errorf("tracing: %s %q: only http/protobuf is supported", k, p)
			}
			break
		}
	}
	s, err := sampler(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")), strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG")))
	if err != nil {
		return cfg, err
	}
	cfg.Endpoint, cfg.Sampler, cfg.ServiceName = endpoint, s, strings.TrimSpace(getenv("OTEL_SERVICE_NAME"))
	if err := exporterFromEnv(&cfg, getenv); err != nil {
		return cfg, err
	}
	if err := batchFromEnv(&cfg, getenv); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// batchFromEnv reads the batch span processor's OTEL_BSP_* variables
// into cfg: each a positive whole number (the delays in milliseconds).
func batchFromEnv(cfg *Config, getenv func(string) string) error {
	num := func(k string) (int, error) {
		v := strings.TrimSpace(getenv(k))
		if v == "" {
			return 0, nil
		}
		n, err := strconv.ParseUint(v, 10, 31)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("tracing: %s %q: want a positive whole number", k, v)
		}
		return int(n), nil
	}
	var err error
	var ms [2]int
	if ms[0], err = num("OTEL_BSP_SCHEDULE_DELAY"); err != nil {
		return err
	}
	if ms[1], err = num("OTEL_BSP_EXPORT_TIMEOUT"); err != nil {
		return err
	}
	if cfg.MaxQueueSize, err = num("OTEL_BSP_MAX_QUEUE_SIZE"); err != nil {
		return err
	}
	if cfg.MaxExportBatchSize, err = num("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"); err != nil {
		return err
	}
	cfg.BatchTimeout = time.Duration(ms[0]) * time.Millisecond
	cfg.BatchExportTimeout = time.Duration(ms[1]) * time.Millisecond
	return nil
}

// exporterFromEnv reads the exporter's variables into cfg.
func exporterFromEnv(cfg *Config, getenv func(string) string) error {
	// otlpVar returns the traces form of OTEL_EXPORTER_OTLP_<name> if set,
	// else the general one, and the name of the one read.
	otlpVar := func(name string) (string, string) {
		for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_" + name, "OTEL_EXPORTER_OTLP_" + name} {
			if v := strings.TrimSpace(getenv(k)); v != "" {
				return v, k
			}
		}
		return "", ""
	}
	if v, k := otlpVar("HEADERS"); v != "" {
		h, err := parseHeaders(k, v)
		if err != nil {
			return err
		}
		cfg.Headers = h
	}
	if v, k := otlpVar("TIMEOUT"); v != "" {
		ms, err := strconv.ParseUint(v, 10, 31)
		if err != nil || ms == 0 {
			return fmt.Errorf("tracing: %s %q: want a positive number of milliseconds", k, v)
		}
		cfg.ExportTimeout = time.Duration(ms) * time.Millisecond
	}
	if v, k := otlpVar("COMPRESSION"); v != "" {
		if v != "gzip" && v != "none" {
			return fmt.Errorf("tracing: %s %q: want gzip or none", k, v)
		}
		cfg.Compression = v
	}
	cfg.CAFile, _ = otlpVar("CERTIFICATE")
	cfg.ClientCertFile, _ = otlpVar("CLIENT_CERTIFICATE")
	cfg.ClientKeyFile, _ = otlpVar("CLIENT_KEY")
	if (cfg.ClientCertFile == "") != (cfg.ClientKeyFile == "") {
		return errors.New("tracing: OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY (or their TRACES_ forms) go together")
	}
	return nil
}

// parseHeaders reads the value of variable k: key=value pairs separated
// by commas, values percent-encoded. Errors name the variable and the
// pair's position (or a key), never a value: values are credentials.
func parseHeaders(k, v string) (map[string]string, error) {
	h := map[string]string{}
	for i, pair := range strings.Split(v, ",") {
		name, val, ok := strings.Cut(pair, "=")
		name, val = strings.TrimSpace(name), strings.TrimSpace(val)
		if !ok || name == "" {
			return nil, fmt.Errorf("tracing: %s: pair %d is not key=value", k, i+1)
		}
		dec, err := url.PathUnescape(val)
		if err != nil {
			return nil, fmt.Errorf("tracing: %s: the value of pair %d is not percent-encoded correctly", k, i+1)
		}
		if err := checkHeader(name, dec); err != nil {
			return nil, fmt.Errorf("tracing: %s: pair %d: %w", k, i+1, err)
		}
		h[name] = dec
	}
	return h, nil
}

// checkEndpoint refuses an endpoint that is not an http or https URL with
// a host. The message names the variable's role, not its value, which may
// carry credentials in its user info.
func checkEndpoint(endpoint string) error {
	scheme, rest, ok := strings.Cut(endpoint, "://")
	if !ok || (scheme != "http" && scheme != "https") || rest == "" || strings.HasPrefix(rest, "/") {
		return fmt.Errorf("tracing: the OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) must be an http:// or https:// URL with a host")
	}
	return nil
}

// sampler returns the sampler named by OTEL_TRACES_SAMPLER with its
// argument; nil for the default.
func sampler(name, arg string) (sdktrace.Sampler, error) {
	ratio := 1.0
	if arg != "" && strings.HasSuffix(name, "traceidratio") {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || !(r >= 0 && r <= 1) { // NaN fails both
			return nil, fmt.Errorf("tracing: OTEL_TRACES_SAMPLER_ARG %q: want a ratio in [0, 1]", arg)
		}
		ratio = r
	}
	switch name {
	case "", "parentbased_always_on":
		return nil, nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, fmt.Errorf("tracing: OTEL_TRACES_SAMPLER %q: want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", name)
}

// Start is FromEnv then New, with attrs added to the resource attributes
// (such as postern.node, the mesh node's id): the set-up of a main. With
// tracing on it
// also routes the OpenTelemetry SDK's own errors (a collector that cannot
// be reached) to logger as "tracing_export_failed" lines, instead of the
// SDK's default plain-text lines on stderr: the SDK's error handler is
// process-wide, which is why only a main may call Start.
func Start(ctx context.Context, service string, getenv func(string) string, logger *slog.Logger, attrs ...attribute.KeyValue) (*Tracing, error) {
	cfg, err := FromEnv(getenv)
	if err != nil {
		return nil, err
	}
	cfg.Attributes = append(cfg.Attributes, attrs...)
	t, err := New(ctx, service, cfg)
	if err != nil || !t.Enabled() {
		return t, err
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("tracing_export_failed", "error", err)
	}))
	return t, nil
}
