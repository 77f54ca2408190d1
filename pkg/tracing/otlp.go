package tracing

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/postern/postern/pkg/backoff"
)

// The exporter below is Postern's own OTLP/HTTP span exporter. The
// OpenTelemetry one (otlptracehttp) marshals through the collector's
// service package, which links gRPC into meshd and connectord (5 MB
// each); this one writes the protobuf of a TracesData itself (otlpwire.go),
// whose wire form is that of the ExportTraceServiceRequest (field 1,
// resource_spans, in both), with the protobuf runtime's wire helpers only.

// Defaults of the exporter.
const (
	defaultExportTimeout = 10 * time.Second
	// exportAttempts bounds the tries of one batch (the first and the
	// retries), all within the export timeout.
	exportAttempts = 5
	// maxResponse bounds the collector's answer read.
	maxResponse = 64 << 10
	// maxErrorText bounds the collector's words quoted in an error.
	maxErrorText = 200
)

// retryDelays are the floor and ceiling of the jittered delay between
// tries; export_test.go shortens them.
type retryDelays struct{ min, max time.Duration }

var defaultRetry = retryDelays{min: 500 * time.Millisecond, max: 5 * time.Second}

// exporter is an sdktrace.SpanExporter posting protobuf spans to one
// OTLP/HTTP traces URL.
type exporter struct {
	url         string
	headers     http.Header
	gzip        bool
	timeout     time.Duration
	retry       retryDelays
	client      *http.Client
	stopCtx     context.Context // done once Shutdown is called
	stop        context.CancelFunc
	shutdownErr sync.Once

	mu   sync.Mutex   // serialises exports (the batch processor's are anyway) and guards buf, zw, zbuf
	buf  []byte       // the last request's encoding, reused
	zw   *gzip.Writer // reused (Reset) between exports: a new one allocates its tables, about 800 KB
	zbuf bytes.Buffer // the last compressed body, reused
}

// gzipLevel is the level of a gzip body: BestSpeed compresses span
// batches (repetitive keys and resource attributes) to about a fifth at a
// fraction of the default level's CPU.
const gzipLevel = gzip.BestSpeed

// maxKeptBuffer bounds the encoding buffer kept between exports.
const maxKeptBuffer = 4 << 20

// newExporter builds the exporter of cfg (cfg.Enabled()). It loads the
// certificate files cfg names; it opens no connection.
func newExporter(cfg Config) (*exporter, error) {
	if err := checkEndpoint(cfg.Endpoint); err != nil {
		return nil, err
	}
	if _, err := url.Parse(cfg.Endpoint); err != nil {
		return nil, errors.New("tracing: the OTLP endpoint is not a valid URL")
	}
	var gz bool
	switch cfg.Compression {
	case "", "none":
	case "gzip":
		gz = true
	default:
		return nil, fmt.Errorf("tracing: compression %q: want gzip or none", cfg.Compression)
	}
	h := make(http.Header, len(cfg.Headers)+3)
	for k, v := range cfg.Headers {
		if err := checkHeader(k, v); err != nil {
			return nil, fmt.Errorf("tracing: OTLP header: %w", err)
		}
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/x-protobuf")
	h.Set("User-Agent", "Postern OTLP/HTTP exporter")
	if gz {
		h.Set("Content-Encoding", "gzip")
	}
	tlsConfig, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	timeout := cfg.ExportTimeout
	if timeout <= 0 {
		timeout = defaultExportTimeout
	}
	stopCtx, stop := context.WithCancel(context.Background())
	return &exporter{
		url: cfg.Endpoint, headers: h, gzip: gz, timeout: timeout, retry: defaultRetry,
		// No redirects: a collector that moves is misconfigured, and a
		// redirect must not carry the headers (credentials) elsewhere.
		client: &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		stopCtx: stopCtx, stop: stop,
	}, nil
}

// tlsConfig returns the TLS settings of the certificate files cfg names,
// or nil (the system roots, no client certificate).
func (cfg Config) tlsConfig() (*tls.Config, error) {
	if cfg.CAFile == "" && cfg.ClientCertFile == "" && cfg.ClientKeyFile == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tracing: OTLP certificate authority file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tracing: OTLP certificate authority file %s holds no PEM certificate", cfg.CAFile)
		}
	}
	if (cfg.ClientCertFile == "") != (cfg.ClientKeyFile == "") {
		return nil, errors.New("tracing: an OTLP client certificate needs both its certificate and its key file")
	}
	if cfg.ClientCertFile != "" {
		// tls.LoadX509KeyPair's errors name no key material.
		pair, err := tls.LoadX509KeyPair(cfg.ClientCertFile, cfg.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("tracing: OTLP client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// checkHeader refuses a header name that is not an HTTP token and a value
// with control characters. The message names neither: a malformed pair
// (such as "Authorization:Bearer x=y") may hold a credential in either.
func checkHeader(k, v string) error {
	if k == "" {
		return errors.New("the header name is empty")
	}
	for _, c := range []byte(k) {
		if !isTokenChar(c) {
			return errors.New("the header name is not an HTTP token")
		}
	}
	for _, c := range []byte(v) {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return errors.New("the header value holds control characters")
		}
	}
	return nil
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return c < 0x80 && c > 0x20 && bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}

// ExportSpans sends spans as one request, retrying a busy or unreachable
// collector with a jittered backoff: at most exportAttempts tries, all
// within the export timeout and ctx. A refused batch (another 4xx, a 5xx
// other than 502–504) is dropped with an error; the batch processor hands
// errors to the OpenTelemetry error handler (a log line).
func (e *exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	if e.stopCtx.Err() != nil {
		return errors.New("tracing: export after shutdown")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	body := appendTracesData(e.buf[:0], spans)
	if cap(body) <= maxKeptBuffer {
		e.buf = body
	} else {
		e.buf = nil
	}
	if e.gzip {
		body = e.compress(body)
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	defer context.AfterFunc(e.stopCtx, cancel)()
	bo := backoff.New(e.retry.min, e.retry.max)
	for attempt := 1; ; attempt++ {
		wait, err := e.post(ctx, body)
		if err == nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) || attempt == exportAttempts || ctx.Err() != nil {
			return fmt.Errorf("tracing: export of %d spans (try %d): %w", len(spans), attempt, err)
		}
		if wait > 0 {
			// The collector asked for a pause: honour it if the deadline
			// allows, else give the batch up now.
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
				return fmt.Errorf("tracing: export of %d spans: the collector asked to retry after %v, past the export timeout: %w", len(spans), wait, err)
			}
			if !backoff.Sleep(ctx, wait) {
				return fmt.Errorf("tracing: export of %d spans: %w", len(spans), err)
			}
			continue
		}
		if !bo.Wait(ctx) {
			return fmt.Errorf("tracing: export of %d spans (try %d): %w", len(spans), attempt, err)
		}
	}
}

// compress returns body gzipped into e.zbuf, with e.zw reused. e.mu is
// held.
func (e *exporter) compress(body []byte) []byte {
	e.zbuf.Reset()
	if e.zbuf.Cap() > maxKeptBuffer {
		e.zbuf = bytes.Buffer{}
	}
	if e.zw == nil {
		e.zw, _ = gzip.NewWriterLevel(&e.zbuf, gzipLevel) // a valid level: no error
	} else {
		e.zw.Reset(&e.zbuf)
	}
	_, _ = e.zw.Write(body) // into a bytes.Buffer: cannot fail
	_ = e.zw.Close()
	return e.zbuf.Bytes()
}

// permanentError is an answer that retrying cannot change.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// post sends body once. It returns nil on success; a permanentError for
// an answer not worth retrying; else a retryable error and the pause the
// collector asked for (Retry-After), if any.
func (e *exporter) post(ctx context.Context, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return 0, permanentError{errors.New("the OTLP endpoint is not a valid URL")}
	}
	req.Header = e.headers.Clone()
	resp, err := e.client.Do(req)
	if err != nil {
		// The url.Error quotes the endpoint, which may carry credentials:
		// keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse)) // let the connection be reused
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		if rejected, why := partialSuccess(resp.Header.Get("Content-Type"), msg); rejected > 0 || why != "" {
			return 0, permanentError{fmt.Errorf("the collector rejected %d spans: %s", rejected, why)}
		}
		return 0, nil
	case code == http.StatusTooManyRequests, code == http.StatusBadGateway, code == http.StatusServiceUnavailable, code == http.StatusGatewayTimeout:
		return retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("the collector answered %s%s", resp.Status, quote(resp.Header.Get("Content-Type"), msg))
	default:
		return 0, permanentError{fmt.Errorf("the collector answered %s%s", resp.Status, quote(resp.Header.Get("Content-Type"), msg))}
	}
}

// retryAfter reads a Retry-After of delay seconds (a date is ignored: the
// backoff applies).
func retryAfter(v string) time.Duration {
	s, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0
	}
	return time.Duration(s) * time.Second
}

// quote returns ": " and the start of a plain-text or JSON answer,
// printable characters only; "" for a protobuf status or nothing.
func quote(contentType string, msg []byte) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt != "text/plain" && mt != "application/json" || len(msg) == 0 {
		return ""
	}
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText]
	}
	out := make([]byte, 0, len(msg))
	for _, c := range msg {
		if c >= 0x20 && c < 0x7f {
			out = append(out, c)
		} else {
			out = append(out, ' ')
		}
	}
	return ": " + string(bytes.TrimSpace(out))
}

// partialSuccess reads ExportTraceServiceResponse.partial_success (field
// 1: rejected_spans, field 1, and error_message, field 2) from a protobuf
// answer.
func partialSuccess(contentType string, msg []byte) (rejected int64, why string) {
	if mt, _, _ := mime.ParseMediaType(contentType); mt != "application/x-protobuf" {
		return 0, ""
	}
	ps := field(msg, 1)
	if v := field(ps, 1); v != nil {
		if n, m := protowire.ConsumeVarint(v); m > 0 {
			rejected = int64(n)
		}
	}
	why = string(field(ps, 2))
	if len(why) > maxErrorText {
		why = why[:maxErrorText]
	}
	return rejected, why
}

// field returns the raw value of the last field num of the protobuf
// message b (a length-delimited field's contents, a varint's bytes), or
// nil.
func field(b []byte, num protowire.Number) []byte {
	var out []byte
	for len(b) > 0 {
		n, typ, m := protowire.ConsumeTag(b)
		if m < 0 {
			return nil
		}
		b = b[m:]
		size := protowire.ConsumeFieldValue(n, typ, b)
		if size < 0 {
			return nil
		}
		if n == num {
			switch typ {
			case protowire.BytesType:
				v, _ := protowire.ConsumeBytes(b)
				out = v
			case protowire.VarintType:
				out = b[:size]
			}
		}
		b = b[size:]
	}
	return out
}

// Shutdown stops the exporter: an export in flight is cancelled, later
// ones fail, idle connections are closed. It is idempotent.
func (e *exporter) Shutdown(context.Context) error {
	e.shutdownErr.Do(func() {
		e.stop()
		e.client.CloseIdleConnections()
	})
	return nil
}
