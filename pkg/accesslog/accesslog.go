// Package accesslog wraps an http.ResponseWriter to record what a handler
// sent (status, bytes), for the one access-log line and the metrics that
// mesh nodes and connectors emit per request.
package accesslog

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Writer records the status and body bytes written through it. It exposes
// the wrapped writer through Unwrap, so http.ResponseController's Flush and
// Hijack (WebSocket upgrades) reach the real connection.
type Writer struct {
	http.ResponseWriter
	status int
	bytes  int64
}

var pool = sync.Pool{New: func() any { return new(Writer) }}

// Wrap returns a recording writer around w. Call Release when the request is
// done and the writer is no longer used.
func Wrap(w http.ResponseWriter) *Writer {
	rw := pool.Get().(*Writer)
	*rw = Writer{ResponseWriter: w}
	return rw
}

// Release returns rw to a pool; rw must not be used afterwards.
func (rw *Writer) Release() {
	*rw = Writer{}
	pool.Put(rw)
}

// WriteHeader implements http.ResponseWriter.
func (rw *Writer) WriteHeader(code int) {
	if rw.status == 0 && code >= 200 || code == http.StatusSwitchingProtocols {
		rw.status = code
	}
	rw.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (rw *Writer) Write(p []byte) (int, error) {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	n, err := rw.ResponseWriter.Write(p)
	rw.bytes += int64(n)
	return n, err
}

// Flush implements http.Flusher.
func (rw *Writer) Flush() {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	if f, ok := rw.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (rw *Writer) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// Status returns the status sent, or 0 if nothing was sent yet.
func (rw *Writer) Status() int { return rw.status }

// Bytes returns the number of body bytes written.
func (rw *Writer) Bytes() int64 { return rw.bytes }

// RecordCut wraps a response body so that the first error, other than
// io.EOF, that ends it early is stored in *dst: the access line of a
// response cut mid-body then says why. It is not safe for concurrent reads,
// as no body is.
func RecordCut(body io.ReadCloser, dst *error) io.ReadCloser { return &cutBody{body, dst} }

type cutBody struct {
	io.ReadCloser
	dst *error
}

func (b *cutBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && *b.dst == nil {
		*b.dst = err
	}
	return n, err
}

// Line writes one access-log line: msg at info level with attrs, through
// l's handler, if l is enabled at info. Unlike l.LogAttrs it records no
// caller (no runtime.Callers per request; no Postern logger adds the
// source), which is most of what a log line costs a proxy beside the
// write itself.
func Line(ctx context.Context, l *slog.Logger, msg string, attrs ...slog.Attr) {
	if !l.Enabled(ctx, slog.LevelInfo) {
		return
	}
	r := slog.NewRecord(time.Now(), slog.LevelInfo, msg, 0)
	r.AddAttrs(attrs...)
	_ = l.Handler().Handle(ctx, r) // as slog.Logger does: a log line that cannot be written is dropped
}
