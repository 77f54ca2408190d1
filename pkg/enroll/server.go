package enroll

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/postern/postern/pkg/accesslog"
	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/iplimit"
	"github.com/postern/postern/pkg/wgkey"
)

// Defaults for the zero values of Config.
const (
	// DefaultCredentialTTL is the lifetime of issued credentials.
	DefaultCredentialTTL = 30 * 24 * time.Hour
	// DefaultRateLimit is the steady request rate allowed per client.
	DefaultRateLimit rate.Limit = 5
	// DefaultRateBurst is the burst allowed per client.
	DefaultRateBurst = 10
	// MaxBodySize caps request bodies; larger ones get 413.
	MaxBodySize = 16 << 10
	// MaxNameLen caps EnrollRequest.Name in bytes.
	MaxNameLen = 128
	// DefaultPingRateLimit is the steady PingPath rate allowed per client:
	// generous, so that measurements are not distorted by refusals.
	DefaultPingRateLimit rate.Limit = 50
	// DefaultPingRateBurst is the PingPath burst allowed per client.
	DefaultPingRateBurst = 200
)

// Attacher adds a connector as a WireGuard peer of this mesh node and takes
// it out again. The mesh node implements it.
//
// Both methods are called with a credential the server has already
// verified, from concurrent requests; they must be safe for concurrent use
// and return promptly (ctx is the request's).
//
// Attach returns what the connector needs to reach this node, including
// the nodes it may attach to (AttachResponse.Nodes); the server fills in
// CredentialExpires. To refuse a valid credential (unknown or disabled
// group, node draining) it returns an error wrapping ErrAttachRefused
// (403); any other error answers 503.
//
// Detach with drain true stops sending new requests to the connector but
// keeps it attached, so that requests in flight finish; with drain false it
// removes the connector (WireGuard peer and pool entry). An unknown
// connector is not an error (nil): detach is idempotent. An error answers
// 503.
type Attacher interface {
	Attach(ctx context.Context, c authority.Credential) (AttachResponse, error)
	Detach(ctx context.Context, c authority.Credential, drain bool) error
}

// Config configures a Server.
type Config struct {
	// Authority verifies tokens and credentials and issues credentials.
	// Required.
	Authority *authority.Authority
	// Used burns enrolment tokens. Required.
	Used *authority.UsedTokens
	// Attacher handles attach requests; nil answers them with 503
	// attach_unavailable.
	Attacher Attacher
	// CredentialTTL is the lifetime of issued and renewed credentials; zero
	// means DefaultCredentialTTL (30 days).
	CredentialTTL time.Duration
	// Logger receives one line per request; nil discards.
	Logger *slog.Logger
	// RateLimit is the steady request rate allowed per client address
	// (IPv4 address, IPv6 /64); zero means DefaultRateLimit (5/s);
	// rate.Inf disables limiting.
	RateLimit rate.Limit
	// RateBurst is the burst allowed per client; zero means
	// DefaultRateBurst (10).
	RateBurst int
	// PingRateLimit is the steady PingPath rate allowed per client
	// address, counted apart from the other requests; zero means
	// DefaultPingRateLimit (50/s); rate.Inf disables limiting.
	PingRateLimit rate.Limit
	// PingRateBurst is the PingPath burst allowed per client; zero means
	// DefaultPingRateBurst (200).
	PingRateBurst int
	// Now is the clock for rate limiting and durations; nil means time.Now.
	// Token times follow the Authority's own clock.
	Now func() time.Time
}

// Server serves the enrol, attach, detach, renew and ping API. It is an http.Handler,
// safe for concurrent use, and starts no goroutines.
type Server struct {
	auth     *authority.Authority
	used     *authority.UsedTokens
	attacher Attacher
	ttl      time.Duration
	logger   *slog.Logger
	limiter  *iplimit.Limiter
	pings    *iplimit.Limiter
	now      func() time.Time
}

var _ http.Handler = (*Server)(nil)

// NewServer returns a Server for cfg.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Authority == nil || cfg.Used == nil {
		return nil, errors.New("enroll: new server: Authority and Used are required")
	}
	if cfg.CredentialTTL < 0 || cfg.CredentialTTL > authority.MaxCredentialTTL {
		return nil, fmt.Errorf("enroll: new server: credential ttl %v out of range [0, %v]", cfg.CredentialTTL, authority.MaxCredentialTTL)
	}
	if cfg.RateLimit < 0 || cfg.RateBurst < 0 || cfg.PingRateLimit < 0 || cfg.PingRateBurst < 0 {
		return nil, errors.New("enroll: new server: negative rate limit or burst")
	}
	s := &Server{
		auth:     cfg.Authority,
		used:     cfg.Used,
		attacher: cfg.Attacher,
		ttl:      cmp(cfg.CredentialTTL, DefaultCredentialTTL),
		logger:   cfg.Logger,
		now:      cfg.Now,
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.limiter = iplimit.NewLimiter(cmp(cfg.RateLimit, DefaultRateLimit), cmp(cfg.RateBurst, DefaultRateBurst), 0)
	s.pings = iplimit.NewLimiter(cmp(cfg.PingRateLimit, DefaultPingRateLimit), cmp(cfg.PingRateBurst, DefaultPingRateBurst), 0)
	return s, nil
}

// cmp returns v, or def when v is zero.
func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// reqState collects what the request's log line reports.
type reqState struct {
	id          string
	remote      netip.Addr
	connectorID string
	group       string
}

// noContent is a route's answer when it has nothing to say: 204.
type noContent struct{}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == PingPath {
		s.ping(w, r)
		return
	}
	start := s.now()
	rw := accesslog.Wrap(w)
	defer rw.Release()
	st := &reqState{id: newRequestID()}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		st.remote = ap.Addr().Unmap().WithZone("")
	}
	rw.Header().Set("X-Request-Id", st.id)
	resp, aerr := s.serve(r, rw, st, start)
	switch {
	case aerr != nil:
		writeError(rw, aerr)
	case resp == noContent{}:
		rw.Header().Set("Cache-Control", "no-store")
		rw.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(rw, http.StatusOK, resp)
	}
	s.logRequest(r, rw.Status(), aerr, st, start)
}

// serve runs the checks common to every route, then the route.
func (s *Server) serve(r *http.Request, w http.ResponseWriter, st *reqState, now time.Time) (any, *apiErr) {
	if ok, wait := s.limiter.Allow(st.remote, now); !ok {
		e := newAPIErr(http.StatusTooManyRequests, CodeRateLimited, "too many requests from this address; retry later", nil)
		e.retryAfter = wait
		return nil, e
	}
	var route func(*http.Request, *reqState) (any, *apiErr)
	switch r.URL.Path {
	case EnrollPath:
		route = s.enroll
	case AttachPath:
		route = s.attach
	case RenewPath:
		route = s.renew
	case DetachPath:
		route = s.detach
	case NodesPath:
		route = s.nodes
	default:
		return nil, newAPIErr(http.StatusNotFound, CodeNotFound, "there is no such Postern API endpoint", nil)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, newAPIErr(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "this endpoint accepts only POST", nil)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, newAPIErr(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "send the request body as application/json", nil)
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodySize)
	return route(r, st)
}

// decode reads exactly one JSON object with no unknown fields into v.
func decode(r *http.Request, v any) *apiErr {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("data after the JSON object")
	}
	if err == nil {
		return nil
	}
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return newAPIErr(http.StatusRequestEntityTooLarge, CodeRequestTooLarge,
			fmt.Sprintf("the request body is larger than %d bytes", MaxBodySize), nil)
	}
	return newAPIErr(http.StatusBadRequest, CodeBadRequest, "the request body is not the expected JSON object", err)
}

// enrollWire is EnrollRequest with the key still a string, so that a bad
// key gets its own error code.
type enrollWire struct {
	Token     string `json:"token"`
	PublicKey string `json:"public_key"`
	Name      string `json:"name,omitempty"`
}

// enroll checks everything first, then issues the credential, and burns
// the token last: a failed request burns nothing.
func (s *Server) enroll(r *http.Request, st *reqState) (any, *apiErr) {
	var req enrollWire
	if e := decode(r, &req); e != nil {
		return nil, e
	}
	pub, err := wgkey.ParsePublic(req.PublicKey)
	if err != nil {
		return nil, newAPIErr(http.StatusBadRequest, CodeBadPublicKey, "public_key must be a base64 WireGuard public key (32 bytes)", nil)
	}
	if len(req.Name) > MaxNameLen || !utf8.ValidString(req.Name) {
		return nil, newAPIErr(http.StatusBadRequest, CodeBadName, fmt.Sprintf("name must be valid UTF-8 of at most %d bytes", MaxNameLen), nil)
	}
	info, err := s.auth.VerifyEnrollToken(req.Token)
	if err != nil {
		return nil, tokenError(err)
	}
	st.group = info.Group
	if s.used.Has(info.ID) {
		return nil, alreadyUsed()
	}
	id := authority.ConnectorID(req.Name, pub)
	st.connectorID = id
	cred, c, err := s.auth.IssueCredential(id, info.Group, pub, s.ttl)
	if err != nil {
		return nil, newAPIErr(http.StatusInternalServerError, CodeInternal, "the mesh node could not issue a credential", err)
	}
	first, err := s.used.MarkUsed(info.ID, info.Expires)
	if err != nil {
		return nil, newAPIErr(http.StatusInternalServerError, CodeInternal, "the mesh node could not record the token as used; nothing was issued", err)
	}
	if !first {
		return nil, alreadyUsed()
	}
	return EnrollResponse{ConnectorID: id, Group: info.Group, Credential: cred, Expires: c.Expires}, nil
}

func alreadyUsed() *apiErr {
	return newAPIErr(http.StatusConflict, CodeTokenAlreadyUsed,
		`this enrolment token has already been used; mint a new one with "meshd token create"`, nil)
}

// ping answers PingPath: 204, no body, no authentication, and no log line
// above debug, so that connectors can time it cheaply.
func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	var remote netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		remote = ap.Addr().Unmap().WithZone("")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, newAPIErr(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "this endpoint accepts only GET and HEAD", nil))
		return
	}
	if ok, wait := s.pings.Allow(remote, s.now()); !ok {
		e := newAPIErr(http.StatusTooManyRequests, CodeRateLimited, "too many pings from this address; retry later", nil)
		e.retryAfter = wait
		writeError(w, e)
		s.logger.Debug("ping_limited", "remote_ip", remote.String())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// attach verifies the credential and hands it to the Attacher.
func (s *Server) attach(r *http.Request, st *reqState) (any, *apiErr) {
	_, c, e := decodeVerified[AttachRequest](s, r, st, func(q *AttachRequest) string { return q.Credential })
	if e != nil {
		return nil, e
	}
	if s.attacher == nil {
		return nil, errNoAttacher()
	}
	resp, err := s.attacher.Attach(r.Context(), c)
	switch {
	case errors.Is(err, ErrAttachRefused):
		return nil, newAPIErr(http.StatusForbidden, CodeAttachRefused, "this mesh node refused the connector; check that its group is in the catalogue", err)
	case err != nil:
		return nil, newAPIErr(http.StatusServiceUnavailable, CodeAttachFailed, "this mesh node could not add the connector; try another node", err)
	}
	resp.CredentialExpires = c.Expires
	return resp, nil
}

// detach verifies the credential and asks the Attacher to drain or remove
// the connector; it answers 204.
func (s *Server) detach(r *http.Request, st *reqState) (any, *apiErr) {
	req, c, e := decodeVerified[DetachRequest](s, r, st, func(q *DetachRequest) string { return q.Credential })
	if e != nil {
		return nil, e
	}
	if s.attacher == nil {
		return nil, errNoAttacher()
	}
	if err := s.attacher.Detach(r.Context(), c, req.Drain); err != nil {
		return nil, newAPIErr(http.StatusServiceUnavailable, CodeDetachFailed, "this mesh node could not detach the connector; retry", err)
	}
	return noContent{}, nil
}

// NodeLister is the optional capability of an Attacher that knows the
// other mesh nodes; without it NodesPath answers 503.
type NodeLister interface {
	// Nodes returns the mesh nodes a connector with c may attach to.
	Nodes(ctx context.Context, c authority.Credential) ([]NodeInfo, error)
}

// nodes verifies the credential and lists the nodes the connector may
// attach to.
func (s *Server) nodes(r *http.Request, st *reqState) (any, *apiErr) {
	_, c, e := decodeVerified[NodesRequest](s, r, st, func(q *NodesRequest) string { return q.Credential })
	if e != nil {
		return nil, e
	}
	nl, ok := s.attacher.(NodeLister)
	if !ok {
		return nil, newAPIErr(http.StatusServiceUnavailable, CodeAttachUnavailable, "this mesh node does not list other nodes", nil)
	}
	nodes, err := nl.Nodes(r.Context(), c)
	if err != nil {
		return nil, newAPIErr(http.StatusServiceUnavailable, CodeAttachFailed, "this mesh node could not list the mesh nodes; retry", err)
	}
	return NodesResponse{Nodes: nodes}, nil
}

// renew checks that the request came through the tunnel from the
// credential's own key, then issues a fresh credential for the same id,
// group and key.
func (s *Server) renew(r *http.Request, st *reqState) (any, *apiErr) {
	_, c, e := decodeVerified[RenewRequest](s, r, st, func(q *RenewRequest) string { return q.Credential })
	if e != nil {
		return nil, e
	}
	if want := c.PublicKey.Addr(); st.remote != want {
		return nil, newAPIErr(http.StatusForbidden, CodeTunnelAddrMismatch,
			"renew over the WireGuard tunnel with the credential's own key",
			fmt.Errorf("remote %v, want tunnel address %v", st.remote, want))
	}
	cred, fresh, err := s.auth.IssueCredential(c.ConnectorID, c.Group, c.PublicKey, s.ttl)
	if err != nil {
		return nil, newAPIErr(http.StatusInternalServerError, CodeInternal, "the mesh node could not issue a credential", err)
	}
	return RenewResponse{Credential: cred, Expires: fresh.Expires}, nil
}

// decodeVerified decodes a request body of type T and verifies the
// credential it carries (credOf picks it out).
func decodeVerified[T any](s *Server, r *http.Request, st *reqState, credOf func(*T) string) (T, authority.Credential, *apiErr) {
	var req T
	if e := decode(r, &req); e != nil {
		return req, authority.Credential{}, e
	}
	c, e := s.verifyCredential(credOf(&req), st)
	return req, c, e
}

func errNoAttacher() *apiErr {
	return newAPIErr(http.StatusServiceUnavailable, CodeAttachUnavailable, "this mesh node does not accept connectors; try another node", nil)
}

// verifyCredential verifies a request's credential and notes whose it is.
func (s *Server) verifyCredential(cred string, st *reqState) (authority.Credential, *apiErr) {
	c, err := s.auth.VerifyCredential(cred)
	if err != nil {
		return authority.Credential{}, credentialError(err)
	}
	st.connectorID, st.group = c.ConnectorID, c.Group
	return c, nil
}

func writeError(w http.ResponseWriter, e *apiErr) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.retryAfter.Seconds()))))
	}
	writeJSON(w, e.status, ErrorResponse{Error: e.code, Message: e.msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a write error means the client left
}

// logRequest writes the request's one log line. It never logs a token or
// credential: only codes, ids and the cause's text, which pkg/authority
// keeps free of token material.
func (s *Server) logRequest(r *http.Request, status int, e *apiErr, st *reqState, start time.Time) {
	level := slog.LevelInfo
	attrs := []slog.Attr{
		slog.String("request_id", st.id),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.String("remote_ip", st.remote.String()),
		slog.Float64("duration_ms", float64(s.now().Sub(start).Microseconds())/1000),
	}
	if st.connectorID != "" {
		attrs = append(attrs, slog.String("connector_id", st.connectorID))
	}
	if st.group != "" {
		attrs = append(attrs, slog.String("group", st.group))
	}
	if e != nil {
		level = slog.LevelWarn
		if e.status >= 500 {
			level = slog.LevelError
		}
		attrs = append(attrs, slog.String("code", e.code))
		if e.cause != nil {
			attrs = append(attrs, slog.String("error", e.cause.Error()))
		}
	}
	s.logger.LogAttrs(r.Context(), level, "postern api request", attrs...)
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
