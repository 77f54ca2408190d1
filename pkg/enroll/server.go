package enroll

import (
	"context"
	"crypto/sha256"
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
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/postern/postern/pkg/accesslog"
	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/iplimit"
	"github.com/postern/postern/pkg/reqid"
	"github.com/postern/postern/pkg/revoke"
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
	// MaxWorkloadTokenLife bounds how far in the future a workload
	// token's exp may lie: a projected ServiceAccount token lives minutes
	// to hours and is rotated by the kubelet; a token good for longer (a
	// legacy or "extended" token, valid for a year) is refused, so that a
	// copied token cannot enrol connectors for long.
	MaxWorkloadTokenLife = 24 * time.Hour
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

// Redeemer burns enrolment tokens for the whole mesh, so that a token is
// accepted at most once across every node. Redeem reports first = true
// only to the redemptions of the one public key that burnt it (a retry
// for the same key after a failure is the same redemption). An error
// wrapping ErrRedeemUnavailable means the mesh cannot decide safely now (a
// partition, the token's owner unreachable, a lost record not yet
// restored): the server answers 503.
type Redeemer interface {
	Redeem(ctx context.Context, t authority.TokenInfo, key wgkey.Public) (first bool, err error)
}

// Checks answers what the mesh knows about keys, connectors and groups.
// Its methods must be safe for concurrent use and fast.
type Checks interface {
	// IsNodeKey reports whether pub is a mesh node's WireGuard key (this
	// node's included): such keys are never enrolled or attached as
	// connectors.
	IsNodeKey(pub wgkey.Public) bool
	// ConnectorRevoked reports whether the connector with id or key pub
	// is revoked.
	ConnectorRevoked(id string, pub wgkey.Public) bool
	// GroupExists reports whether group is in the catalogue.
	GroupExists(group string) bool
}

// WorkloadVerifier verifies workload identity tokens (Kubernetes projected
// ServiceAccount tokens) for enrolment in a connector group; the mesh node
// implements it with the catalogue's workload_enrollment of each group and
// the trusted issuers' key sets. It must be safe for concurrent use; ctx
// is the request's (a key set may be fetched).
//
// VerifyWorkload errors wrap ErrWorkloadToken (the token does not verify:
// issuer, signature, algorithm, audience, times), ErrWorkloadNotAllowed
// (the group does not exist or accepts no such token: no
// workload_enrollment, another issuer, a subject it does not list) or
// ErrWorkloadUnavailable (the issuer's keys cannot be had now).
//
// AllowsSubject reports whether group still accepts workload subject sub
// (its workload_enrollment lists it): a credential issued on a workload
// enrolment is renewed and attaches only while it does, so that removing
// a subject from the catalogue ends its connectors within their short
// credential's life.
type WorkloadVerifier interface {
	VerifyWorkload(ctx context.Context, group, token string) (WorkloadGrant, error)
	AllowsSubject(group, sub string) bool
}

// WorkloadGrant is what a verified workload token allows.
type WorkloadGrant struct {
	// Subject is the token's sub, for the log.
	Subject string
	// Expires is the token's exp; a token valid beyond
	// MaxWorkloadTokenLife from now is refused.
	Expires time.Time
	// CredentialTTL is the lifetime of the credential to issue (the
	// group's credential_ttl); capped by the server's CredentialTTL.
	// Required (positive).
	CredentialTTL time.Duration
}

// Revoker accepts an admin revocation (the authority-signed statement
// from "meshd revoke") and spreads it. An error wrapping ErrBadRevocation
// answers 400; any other 503.
type Revoker interface {
	Revoke(ctx context.Context, proof string) (revoke.Entry, error)
}

// Config configures a Server.
type Config struct {
	// Authority verifies tokens and credentials and issues credentials.
	// Required.
	Authority *authority.Authority
	// Used holds the enrolment tokens burnt. Required.
	Used *authority.UsedTokens
	// NodeKey is this mesh node's WireGuard private key; it checks the
	// connectors' proofs of possession. Required.
	NodeKey wgkey.Private
	// Redeemer burns tokens for the whole mesh; nil means Used alone (a
	// lone node).
	Redeemer Redeemer
	// Checks refuses mesh node keys, revoked connectors and unknown
	// groups; nil checks nothing (tests of the API alone).
	Checks Checks
	// Revoker serves RevokePath; nil answers it with 503.
	Revoker Revoker
	// Attacher handles attach requests; nil answers them with 503
	// attach_unavailable.
	Attacher Attacher
	// Workloads verifies workload identity tokens for enrolment; nil
	// refuses every workload_token (403 workload_not_allowed).
	Workloads WorkloadVerifier
	// CredentialTTL is the lifetime of credentials issued with a one-time
	// token, and the longest of any credential; zero means
	// DefaultCredentialTTL (30 days). A renewal never lengthens a
	// credential's lifetime: a short credential (a workload enrolment's)
	// stays short.
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
	// UpdateSlot is the length of the connector groups' update slots
	// (UpdateSlotPath); zero means UpdateSlotLength.
	UpdateSlot time.Duration
	// Serving counts the connectors of group, other than the one with id
	// except, that serve now (attached, alive, not draining) at any mesh
	// node. The update slot is refused while it is zero, unless the
	// connector asks to update alone. Nil counts nothing: every slot is
	// granted as if asked alone.
	Serving func(group, except string) int
	// Now is the clock for rate limiting and durations; nil means time.Now.
	// Token times follow the Authority's own clock.
	Now func() time.Time
}

// Server serves the enrol, attach, detach, renew and ping API. It is an http.Handler,
// safe for concurrent use, and starts no goroutines.
type Server struct {
	auth     *authority.Authority
	used     *authority.UsedTokens
	nodeKey  wgkey.Private
	redeemer Redeemer
	checks   Checks
	revoker  Revoker
	attacher Attacher
	wl       WorkloadVerifier
	ttl      time.Duration
	slot     time.Duration
	serving  func(group, except string) int
	logger   *slog.Logger
	limiter  *iplimit.Limiter
	pings    *iplimit.Limiter
	now      func() time.Time
}

var _ http.Handler = (*Server)(nil)

// NewServer returns a Server for cfg.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Authority == nil || cfg.Used == nil || cfg.NodeKey.IsZero() {
		return nil, errors.New("enroll: new server: Authority, Used and NodeKey are required")
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
		nodeKey:  cfg.NodeKey,
		redeemer: cfg.Redeemer,
		checks:   cfg.Checks,
		revoker:  cfg.Revoker,
		attacher: cfg.Attacher,
		wl:       cfg.Workloads,
		ttl:      cmp(cfg.CredentialTTL, DefaultCredentialTTL),
		slot:     cmp(cfg.UpdateSlot, UpdateSlotLength),
		serving:  cfg.Serving,
		logger:   cfg.Logger,
		now:      cfg.Now,
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.checks == nil {
		s.checks = noChecks{}
	}
	if s.redeemer == nil {
		s.redeemer = localRedeemer{cfg.Used}
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
	subject     string // a workload token's sub
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
	case UpdateSlotPath:
		route = s.updateSlot
	case DetachPath:
		route = s.detach
	case LeavePath:
		route = s.leave
	case NodesPath:
		route = s.nodes
	case RevokePath:
		route = s.revoke
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
	Token         string `json:"token"`
	WorkloadToken string `json:"workload_token"`
	Group         string `json:"group"`
	PublicKey     string `json:"public_key"`
	Name          string `json:"name,omitempty"`
}

// enroll checks everything first, then signs and seals the credential,
// burns the token across the mesh, and only then answers: a failed
// request burns nothing, and the credential goes out sealed to the key it
// names, so only that key's holder can use it.
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
	if (req.Token == "") == (req.WorkloadToken == "") {
		return nil, newAPIErr(http.StatusBadRequest, CodeBadRequest, "send exactly one of token (a one-time enrolment token) and workload_token", nil)
	}
	if req.WorkloadToken != "" {
		return s.enrollWorkload(r, st, req, pub)
	}
	if req.Group != "" {
		return nil, newAPIErr(http.StatusBadRequest, CodeBadRequest, "group is only for workload_token: a one-time token names its own group", nil)
	}
	info, err := s.auth.VerifyEnrollToken(req.Token)
	if err != nil {
		return nil, tokenError(err)
	}
	st.group = info.Group
	id := authority.ConnectorID(req.Name, pub)
	st.connectorID = id
	if e := s.checkConnector(id, info.Group, pub); e != nil {
		return nil, e
	}
	// A used token is refused by the redeemer below, which also accepts
	// a retry of the redemption that burnt it (the same key).
	resp, e := s.issueSealed(id, info.Group, pub, s.ttl, "")
	if e != nil {
		return nil, e
	}
	first, err := s.redeemer.Redeem(r.Context(), info, pub)
	switch {
	case errors.Is(err, ErrRedeemUnavailable), errors.Is(err, authority.ErrUsedUnrestored):
		e := newAPIErr(http.StatusServiceUnavailable, CodeTokenCheckUnavailable,
			"this mesh node cannot make sure now that the token is used only once (it cannot reach enough of the mesh, or it is restoring its record of used tokens); retry in a minute with the same key, or at another mesh node", err)
		e.retryAfter = 10 * time.Second
		return nil, e
	case err != nil:
		return nil, newAPIErr(http.StatusInternalServerError, CodeInternal, "the mesh node could not record the token as used; nothing was issued", err)
	case !first:
		return nil, alreadyUsed()
	}
	return resp, nil
}

// issueSealed issues a credential for connector id of group with key pub,
// valid for ttl (of workload subject sub, if not empty), and returns the
// enrolment answer with it sealed to pub.
func (s *Server) issueSealed(id, group string, pub wgkey.Public, ttl time.Duration, sub string) (EnrollResponse, *apiErr) {
	cred, c, err := s.issue(authority.Credential{ConnectorID: id, Group: group, PublicKey: pub, WorkloadSubject: sub}, ttl)
	if err != nil {
		return EnrollResponse{}, newAPIErr(http.StatusInternalServerError, CodeInternal, "the mesh node could not issue a credential", err)
	}
	sealed, err := SealCredential(cred, pub)
	if err != nil {
		return EnrollResponse{}, newAPIErr(http.StatusInternalServerError, CodeInternal, "the mesh node could not seal the credential", err)
	}
	node := s.nodeKey.Public()
	return EnrollResponse{ConnectorID: id, Group: group, SealedCredential: sealed, NodeKey: &node, Expires: c.Expires}, nil
}

// enrollWorkload enrols a connector in req.Group with a workload identity
// token the group accepts, for the group's short credential lifetime.
// Nothing is burnt: the token is good until its exp (bounded by
// MaxWorkloadTokenLife), as a pod that restarts presents it again, and the
// credential goes out sealed to the key it names.
func (s *Server) enrollWorkload(r *http.Request, st *reqState, req enrollWire, pub wgkey.Public) (any, *apiErr) {
	if !authority.ValidGroup(req.Group) {
		return nil, newAPIErr(http.StatusBadRequest, CodeBadRequest, "group (a connector group id) is required with workload_token", nil)
	}
	st.group = req.Group
	if s.wl == nil {
		return nil, newAPIErr(http.StatusForbidden, CodeWorkloadNotAllowed, "this mesh node accepts no workload identity tokens", nil)
	}
	g, err := s.wl.VerifyWorkload(r.Context(), req.Group, req.WorkloadToken)
	switch {
	case errors.Is(err, ErrWorkloadUnavailable):
		e := newAPIErr(http.StatusServiceUnavailable, CodeWorkloadUnavailable, "this mesh node cannot fetch the issuer's signing keys now; retry later", err)
		e.retryAfter = 10 * time.Second
		return nil, e
	case errors.Is(err, ErrWorkloadNotAllowed):
		return nil, newAPIErr(http.StatusForbidden, CodeWorkloadNotAllowed,
			fmt.Sprintf("connector group %q does not accept this workload token (check the group's workload_enrollment: issuer and subjects)", req.Group), err)
	case err != nil:
		return nil, newAPIErr(http.StatusUnauthorized, CodeWorkloadTokenInvalid, "the workload token is not valid: "+workloadReason(err), err)
	case g.CredentialTTL <= 0:
		return nil, newAPIErr(http.StatusInternalServerError, CodeInternal, "the mesh node has no credential lifetime for this group", nil)
	}
	st.subject = g.Subject
	if g.Expires.After(s.now().Add(MaxWorkloadTokenLife)) {
		return nil, newAPIErr(http.StatusUnauthorized, CodeWorkloadTokenInvalid,
			fmt.Sprintf("the workload token is valid for more than %v; use a projected ServiceAccount token with a short expirationSeconds", MaxWorkloadTokenLife), nil)
	}
	id := authority.ConnectorID(req.Name, pub)
	st.connectorID = id
	if e := s.checkConnector(id, req.Group, pub); e != nil {
		return nil, e
	}
	resp, e := s.issueSealed(id, req.Group, pub, min(g.CredentialTTL, s.ttl), g.Subject)
	if e != nil {
		return nil, e
	}
	return resp, nil
}

// workloadReason is the client's part of a workload token error: the
// verifier's text after its last ": ", which names the check that failed
// and never holds token material.
func workloadReason(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

// checkConnector refuses a connector of an unknown group, with a mesh
// node's key, or revoked.
func (s *Server) checkConnector(id, group string, pub wgkey.Public) *apiErr {
	switch {
	case !s.checks.GroupExists(group):
		return newAPIErr(http.StatusForbidden, CodeGroupUnknown,
			fmt.Sprintf("connector group %q is not in this mesh's catalogue (it was removed, or the token was minted for another mesh)", group), nil)
	case s.checks.IsNodeKey(pub) || pub == s.nodeKey.Public():
		return newAPIErr(http.StatusForbidden, CodeKeyReserved,
			"this WireGuard key belongs to a mesh node; a connector must use its own key", nil)
	case s.checks.ConnectorRevoked(id, pub):
		return newAPIErr(http.StatusForbidden, CodeConnectorRevoked,
			"this connector (its id or its key) has been revoked; enrol a new connector with a new key", nil)
	}
	return nil
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
		s.logger.Debug("ping_limited", "client_ip", remote.String())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// attach verifies the credential and the proof of possession, then hands
// it to the Attacher.
func (s *Server) attach(r *http.Request, st *reqState) (any, *apiErr) {
	req, c, e := decodeVerified[AttachRequest](s, r, st, func(q *AttachRequest) string { return q.Credential })
	if e != nil {
		return nil, e
	}
	if e := s.checkProof(req.Proof, AttachPath, c, req.Credential, ""); e != nil {
		return nil, e
	}
	if e := s.checkConnector(c.ConnectorID, c.Group, c.PublicKey); e != nil {
		return nil, e
	}
	if e := s.checkWorkload(c); e != nil {
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

// detach verifies the credential and the proof of possession, then asks
// the Attacher to drain or remove the connector; it answers 204. A revoked
// connector may still detach itself.
func (s *Server) detach(r *http.Request, st *reqState) (any, *apiErr) {
	req, c, e := decodeVerified[DetachRequest](s, r, st, func(q *DetachRequest) string { return q.Credential })
	if e != nil {
		return nil, e
	}
	if e := s.checkProof(req.Proof, DetachPath, c, req.Credential, drainExtra(req.Drain)); e != nil {
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

// drainExtra is the proof parameter of a detach request.
func drainExtra(drain bool) string { return "drain=" + strconv.FormatBool(drain) }

// checkProof verifies a connector's proof of possession for path; a
// missing or failed proof answers 401 proof_required with this node's
// WireGuard key, so that the connector can make one.
func (s *Server) checkProof(proof, path string, c authority.Credential, cred, extra string) *apiErr {
	err := VerifyProof(s.nodeKey, c.PublicKey, proof, path, s.now(), cred, extra)
	if err == nil {
		return nil
	}
	if proof == "" {
		err = fmt.Errorf("enroll: no proof: %w", ErrProof)
	}
	e := newAPIErr(http.StatusUnauthorized, CodeProofRequired,
		"prove that you hold the credential's WireGuard private key: send a proof made with this node's key (node_key)", err)
	pub := s.nodeKey.Public()
	e.nodeKey, e.expected = &pub, proof == "" // a first call that does not know the node's key yet
	return e
}

// leave has the node revoke the connector that proves it holds the
// credential's key: an authority-signed connector revocation that lives
// until the credential would have expired, recorded and spread like an
// admin's. It answers 204; leaving twice is no error.
func (s *Server) leave(r *http.Request, st *reqState) (any, *apiErr) {
	req, c, e := decodeVerified[LeaveRequest](s, r, st, func(q *LeaveRequest) string { return q.Credential })
	if e != nil {
		return nil, e
	}
	if e := s.checkProof(req.Proof, LeavePath, c, req.Credential, ""); e != nil {
		return nil, e
	}
	if s.revoker == nil {
		return nil, newAPIErr(http.StatusServiceUnavailable, CodeRevokeUnavailable, "this mesh node does not accept revocations; try another node", nil)
	}
	now := s.now()
	entry := revoke.Connector(c.ConnectorID, now, max(c.Expires.Sub(now), 0)+s.auth.Skew()+time.Minute)
	proof, err := s.auth.SignRevocation(entry)
	if err != nil {
		return nil, newAPIErr(http.StatusInternalServerError, CodeInternal, "the mesh node could not sign the revocation", err)
	}
	if _, err := s.revoker.Revoke(r.Context(), proof); err != nil {
		return nil, newAPIErr(http.StatusServiceUnavailable, CodeLeaveFailed, "this mesh node could not record the revocation; retry or try another node", err)
	}
	return noContent{}, nil
}

// revoke accepts an admin revocation.
func (s *Server) revoke(r *http.Request, st *reqState) (any, *apiErr) {
	var req RevokeRequest
	if e := decode(r, &req); e != nil {
		return nil, e
	}
	if s.revoker == nil {
		return nil, newAPIErr(http.StatusServiceUnavailable, CodeRevokeUnavailable, "this mesh node does not accept revocations", nil)
	}
	e, err := s.revoker.Revoke(r.Context(), req.Revocation)
	switch {
	case errors.Is(err, ErrBadRevocation):
		return nil, newAPIErr(http.StatusBadRequest, CodeRevocationInvalid,
			"this is not a valid revocation signed by this mesh's authority key (see \"meshd revoke\")", err)
	case err != nil:
		return nil, newAPIErr(http.StatusServiceUnavailable, CodeRevokeUnavailable, "this mesh node could not record the revocation; retry", err)
	}
	resp := RevokeResponse{Kind: string(e.Kind), Subject: e.Subject, Until: time.Unix(e.Until, 0).UTC()}
	if e.Before != 0 {
		resp.Before = time.Unix(e.Before, 0).UTC()
	}
	return resp, nil
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
	if s.checks.ConnectorRevoked(c.ConnectorID, c.PublicKey) {
		return nil, revokedCredential()
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
	if e := s.fromOwnTunnel(c, st, "renew"); e != nil {
		return nil, e
	}
	ttl := s.ttl
	if life := c.Expires.Sub(c.IssuedAt); life > 0 && life < ttl {
		ttl = life // a renewal never lengthens a credential's life
	}
	if e := s.checkWorkload(c); e != nil {
		return nil, e
	}
	cred, fresh, err := s.issue(c, ttl)
	if err != nil {
		return nil, newAPIErr(http.StatusInternalServerError, CodeInternal, "the mesh node could not issue a credential", err)
	}
	return RenewResponse{Credential: cred, Expires: fresh.Expires}, nil
}

// issue issues a credential like c (id, group, key and workload subject)
// valid for ttl.
func (s *Server) issue(c authority.Credential, ttl time.Duration) (string, authority.Credential, error) {
	if c.WorkloadSubject != "" {
		return s.auth.IssueWorkloadCredential(c.ConnectorID, c.Group, c.PublicKey, ttl, c.WorkloadSubject)
	}
	return s.auth.IssueCredential(c.ConnectorID, c.Group, c.PublicKey, ttl)
}

// checkWorkload refuses a credential of a workload enrolment whose group
// no longer accepts its subject.
func (s *Server) checkWorkload(c authority.Credential) *apiErr {
	if c.WorkloadSubject == "" || (s.wl != nil && s.wl.AllowsSubject(c.Group, c.WorkloadSubject)) {
		return nil
	}
	return newAPIErr(http.StatusForbidden, CodeWorkloadNotAllowed,
		fmt.Sprintf("connector group %q no longer accepts this connector's workload identity (its workload_enrollment changed); the connector ends with its credential", c.Group), nil)
}

// fromOwnTunnel checks that a request came through the tunnel from the
// credential's own key, and that the connector is not revoked and its
// group still exists; what names the request in the message.
func (s *Server) fromOwnTunnel(c authority.Credential, st *reqState, what string) *apiErr {
	if want := c.PublicKey.Addr(); st.remote != want {
		return newAPIErr(http.StatusForbidden, CodeTunnelAddrMismatch,
			what+" over the WireGuard tunnel with the credential's own key",
			fmt.Errorf("remote %v, want tunnel address %v", st.remote, want))
	}
	return s.checkConnector(c.ConnectorID, c.Group, c.PublicKey)
}

// updateSlot grants the current update slot of the connector's group to
// at most one connector of the group across the whole mesh: the slot is
// redeemed like a one-time token (a majority vote in a cluster, so a
// partition's minority grants nothing), keyed by group and slot start. A
// retry by the winner is refused too: a connector asks once per slot.
func (s *Server) updateSlot(r *http.Request, st *reqState) (any, *apiErr) {
	req, c, e := decodeVerified[UpdateSlotRequest](s, r, st, func(q *UpdateSlotRequest) string { return q.Credential })
	if e != nil {
		return nil, e
	}
	if e := s.fromOwnTunnel(c, st, "ask for an update slot"); e != nil {
		return nil, e
	}
	if !req.Alone && s.serving != nil && s.serving(c.Group, c.ConnectorID) == 0 {
		// Checked before the slot is redeemed, so that waiting burns no slot.
		now := s.now()
		waiting := "no other connector of group " + c.Group + " serves: updating now would leave the group without service"
		s.logger.Info("update_slot", "connector", c.ConnectorID, "group", c.Group, "version", printable(req.Version),
			"granted", false, "reason", waiting)
		return UpdateSlotResponse{Start: now, Until: now.Add(min(s.slot/4, time.Minute)), Waiting: waiting}, nil
	}
	start := s.now().Truncate(s.slot)
	sum := sha256.Sum256([]byte("update slot\x00" + c.Group + "\x00" + strconv.FormatInt(start.Unix(), 10)))
	slot := authority.TokenInfo{ID: "update-slot-" + hex.EncodeToString(sum[:16]), Group: c.Group, IssuedAt: start, Expires: start.Add(s.slot)}
	granted, err := s.redeemer.Redeem(r.Context(), slot, c.PublicKey)
	if err != nil {
		return nil, newAPIErr(http.StatusServiceUnavailable, CodeTokenCheckUnavailable, "the mesh cannot decide the update slot now; retry later", err)
	}
	s.logger.Info("update_slot", "connector", c.ConnectorID, "group", c.Group, "version", printable(req.Version),
		"granted", granted, "slot_end", slot.Expires)
	return UpdateSlotResponse{Granted: granted, Start: start, Until: slot.Expires}, nil
}

// printable bounds a client-given string (a version, a workload subject)
// for the logs: printable ASCII, at most 64 bytes.
func printable(v string) string {
	if len(v) > 64 {
		v = v[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, v)
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

func revokedCredential() *apiErr {
	return newAPIErr(http.StatusForbidden, CodeConnectorRevoked,
		"this connector (its id or its key) has been revoked; enrol a new connector with a new key", nil)
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
	writeJSON(w, e.status, ErrorResponse{Error: e.code, Message: e.msg, NodeKey: e.nodeKey})
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
		slog.String("client_ip", st.remote.String()),
		slog.Float64("duration_ms", float64(s.now().Sub(start).Microseconds())/1000),
	}
	if st.connectorID != "" {
		attrs = append(attrs, slog.String("connector", st.connectorID))
	}
	if st.group != "" {
		attrs = append(attrs, slog.String("group", st.group))
	}
	if st.subject != "" {
		attrs = append(attrs, slog.String("workload_subject", printable(st.subject)))
	}
	if e != nil {
		level = slog.LevelWarn
		switch {
		case e.status >= 500:
			level = slog.LevelError
		case e.expected:
			level = slog.LevelInfo
		}
		attrs = append(attrs, slog.String("code", e.code))
		if e.cause != nil {
			attrs = append(attrs, slog.String("error", e.cause.Error()))
		}
	}
	s.logger.LogAttrs(r.Context(), level, "api_request", attrs...)
}

func newRequestID() string { return reqid.New() }

// noChecks is the Checks of a Server configured without any.
type noChecks struct{}

func (noChecks) IsNodeKey(wgkey.Public) bool                { return false }
func (noChecks) ConnectorRevoked(string, wgkey.Public) bool { return false }
func (noChecks) GroupExists(string) bool                    { return true }

// localRedeemer burns tokens in this node's store alone.
type localRedeemer struct{ used *authority.UsedTokens }

func (l localRedeemer) Redeem(_ context.Context, t authority.TokenInfo, _ wgkey.Public) (bool, error) {
	return l.used.MarkUsed(t.ID, t.Expires)
}
