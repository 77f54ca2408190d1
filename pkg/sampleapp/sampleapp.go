// Package sampleapp is the sample internal web application that sits at the
// far end of the request path, behind a connector: the "SmartMoney" app of
// the demo, the backend of end-to-end tests and the target of the latency
// and throughput benchmarks.
//
// It exercises everything the mesh must carry faithfully: plain requests
// (/hello, /headers), large streamed bodies in both directions (/download,
// /upload), a request body answered back whole (/echo), WebSocket upgrades (/ws), server-sent events that must be
// flushed one by one (/sse), slow backends (/slow) and arbitrary status codes
// (/status/{code}). Its index page shows the request headers it received, so
// a person can see what the mesh added; /admin is an admin area (the path the
// demo's policy keeps for admins).
package sampleapp

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// DefaultName is the application name used when Config.Name is empty.
const DefaultName = "SmartMoney"

// Config configures an App.
type Config struct {
	// Name is shown on the index page and returned by /headers as "app", so
	// tests with several sample apps can tell which one answered.
	// Empty means DefaultName.
	Name string

	// Logger receives debug lines about aborted streams and WebSocket
	// sessions. Nil means logs are discarded.
	Logger *slog.Logger

	// Now returns the current time, used for the timestamps of /sse events.
	// Nil means time.Now.
	Now func() time.Time
}

// App is the sample application. It is safe for concurrent use and holds no
// resources that need closing: requests in flight end with their contexts.
type App struct {
	name    string
	logger  *slog.Logger
	now     func() time.Time
	index   *template.Template
	admin   *template.Template
	handler http.Handler
}

// New returns an App configured by cfg.
func New(cfg Config) *App {
	a := &App{
		name:   cfg.Name,
		logger: cfg.Logger,
		now:    cfg.Now,
		index:  template.Must(template.New("index").Parse(indexHTML)),
		admin:  template.Must(template.New("admin").Parse(adminHTML)),
	}
	if a.name == "" {
		a.name = DefaultName
	}
	if a.logger == nil {
		a.logger = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.handler = a.routes()
	return a
}

// Handler returns the application's HTTP handler.
func (a *App) Handler() http.Handler { return a.handler }

// ServeHTTP serves r through the application's routes, so *App is itself an
// http.Handler.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.handler.ServeHTTP(w, r)
}

// Name returns the application name shown on its pages.
func (a *App) Name() string { return a.name }

func (a *App) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.serveIndex)
	mux.HandleFunc("GET /admin", a.serveAdmin)
	mux.HandleFunc("GET /admin/", a.serveAdmin)
	mux.HandleFunc("GET /headers", a.serveHeaders)
	mux.HandleFunc("GET /hello", a.serveHello)
	mux.HandleFunc("GET /download", a.serveDownload)
	mux.HandleFunc("POST /upload", a.serveUpload)
	mux.HandleFunc("POST /echo", a.serveEcho)
	mux.HandleFunc("GET /ws", a.serveWebSocket)
	mux.HandleFunc("GET /sse", a.serveEvents)
	mux.HandleFunc("GET /slow", a.serveSlow)
	mux.HandleFunc("/status/{code}", a.serveStatus)
	mux.HandleFunc("GET /healthz", a.serveHealth)
	return mux
}

// RequestInfo is the JSON document served by /headers: what the application
// saw of the request after the mesh and the connector handled it.
type RequestInfo struct {
	App        string              `json:"app"`
	Method     string              `json:"method"`
	Host       string              `json:"host"`
	Path       string              `json:"path"`
	RawQuery   string              `json:"raw_query"`
	RemoteAddr string              `json:"remote_addr"`
	Proto      string              `json:"proto"`
	Headers    map[string][]string `json:"headers"`
}

func (a *App) requestInfo(r *http.Request) RequestInfo {
	h := r.Header
	if h == nil {
		h = http.Header{}
	}
	return RequestInfo{
		App:        a.name,
		Method:     r.Method,
		Host:       r.Host,
		Path:       r.URL.Path,
		RawQuery:   r.URL.RawQuery,
		RemoteAddr: r.RemoteAddr,
		Proto:      r.Proto,
		Headers:    h,
	}
}

func (a *App) serveHeaders(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.requestInfo(r))
}

func (a *App) serveHello(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "hello\n")
}

func (a *App) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

func (a *App) serveStatus(w http.ResponseWriter, r *http.Request) {
	code, err := strconv.Atoi(r.PathValue("code"))
	if err != nil || code < 200 || code > 599 {
		badRequest(w, "status code must be an integer from 200 to 599")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	// Statuses without a body (204, 304) make Write fail; nothing to do.
	fmt.Fprintf(w, "%d %s\n", code, http.StatusText(code))
}

// MaxSlowDelay is the longest delay /slow accepts.
const MaxSlowDelay = 10 * time.Minute

func (a *App) serveSlow(w http.ResponseWriter, r *http.Request) {
	delay, err := durationParam(r.URL.Query(), "delay", time.Second, MaxSlowDelay)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		a.logger.Debug("slow request abandoned", "path", r.URL.Path, "err", r.Context().Err())
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func badRequest(w http.ResponseWriter, msg string) {
	http.Error(w, msg, http.StatusBadRequest)
}
