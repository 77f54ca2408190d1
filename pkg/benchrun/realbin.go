package benchrun

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/postern/postern/pkg/devcert"
	"github.com/postern/postern/pkg/edge"
	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/wgkey"
)

// x509Pool returns a pool of the certificates in pem, or nil if it holds
// none.
func x509Pool(pem []byte) *x509.CertPool {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		return nil
	}
	return p
}

// The real-binaries mode (bench real) builds meshd, connectord and bench,
// and starts them as separate processes as an operator would: meshd from
// a configuration file in a temporary directory with TLS at its edge and
// WireGuard on loopback UDP, connectord enrolled with a one-time token and
// started with the command its enrolment printed, and a plain Go backend
// (bench backend, the sample app). Every row's load comes from a separate
// process too (bench load).

// RealConfig configures a real-binaries run.
type RealConfig struct {
	// Dir is the working directory for the binaries, configuration and
	// state; it must exist. The caller removes it.
	Dir string
	// Warmup is the unrecorded time before each latency row; zero means
	// none.
	Warmup time.Duration
	// Duration is the recorded time of each row; it must be positive.
	Duration time.Duration
	// Rounds is how many times every row runs, interleaved (all rows once,
	// then all again); zero means 1.
	Rounds int
	// Concurrency lists the latency rows' levels; empty means 1 and 32.
	Concurrency []int
	// BulkBytes is the size of one bulk download; zero means
	// DefaultBulkBytes.
	BulkBytes int64
	// Rows, if not empty, selects the rows to run by name (RealRowNames:
	// "postern" runs the postern latency row at every level,
	// "bulk-postern" the bulk row); empty means every row.
	Rows []string
	// Settle is how long the processes sit idle after the last row
	// before their memory is read a second time (RealProc.IdleRSSMiB);
	// zero means no second reading.
	Settle time.Duration
	// OAuth2Proxy is the oauth2-proxy binary of the peer row; empty means
	// the one on PATH or in GOPATH/bin (OAuth2ProxyVersion, installed by
	// task bench:real and .ci/run). Without one the run fails, saying how
	// to install it.
	OAuth2Proxy string
	// Progress receives a line per row as it completes; nil discards.
	Progress io.Writer
}

// RealRow is one figure set of the real-binaries run: one target at one
// concurrency (or its bulk row), merged over the rounds.
type RealRow struct {
	// Target is "direct" (load → backend), "postern" (load → meshd →
	// WireGuard → connectord → backend, passthrough app), "postern-auth"
	// (the same with a pre-authenticated app: every request's app cookie
	// is verified and the policy checked at meshd), "postern-bearer" (the
	// same with a workload's bearer token instead of the cookie),
	// "postern-traced" (as
	// postern, through a second meshd and connectord with tracing on,
	// every request sampled, exporting to a sink process; see
	// startTraced) or "wg-splice" (load → stock
	// wireguard-go netstack splice, two processes → backend; see
	// RunSplice).
	Target string `json:"target"`
	// Bulk marks the one-stream download row.
	Bulk bool `json:"bulk,omitempty"`
	// Concurrency is the load's workers, one connection each.
	Concurrency int `json:"concurrency"`
	// Rounds holds the figures of each round, in order.
	Rounds []RealRound `json:"rounds"`
	// RPS, P50 and P99 (latency rows) and MiBs (bulk) are the medians over
	// the rounds.
	RPS  float64  `json:"rps"`
	P50  float64  `json:"p50_ms"`
	P99  float64  `json:"p99_ms"`
	MiBs *float64 `json:"mib_s,omitempty"`
	// CPUPer10k (latency rows) and CPUPerGiB (bulk) are the CPU seconds
	// of each measured process (meshd, connectord, backend), summed over
	// the rounds and divided by all the requests (or bytes) the load
	// process completed in them, warm-up included.
	CPUPer10k map[string]float64 `json:"cpu_s_per_10k,omitempty"`
	CPUPerGiB map[string]float64 `json:"cpu_s_per_gib,omitempty"`
	// RatioToDirect is RPS (bulk: MiBs) over the direct row's at the same
	// concurrency in the same run; set on postern rows.
	RatioToDirect *float64 `json:"ratio_to_direct,omitempty"`
	// P50RatioToDirect is P50 over the direct row's; set on postern
	// latency rows.
	P50RatioToDirect *float64 `json:"p50_ratio_to_direct,omitempty"`
	// RatioToPostern is RPS over the postern row's at the same
	// concurrency: the cost of the cookie or bearer check and policy, or
	// of tracing; set on postern-auth, postern-bearer and postern-traced
	// rows.
	RatioToPostern *float64 `json:"ratio_to_postern,omitempty"`
	// CPURatioToPostern is the CPU per 10k requests of meshd and
	// connectord over the postern row's at the same concurrency in the
	// same run; set on postern-traced rows.
	CPURatioToPostern *float64 `json:"cpu_ratio_to_postern,omitempty"`
	// Errors is the failed requests over all rounds.
	Errors int64 `json:"errors"`
}

// RealRound is one round of a RealRow.
type RealRound struct {
	LoadResult
	// CPU is the CPU seconds each process used while the load process ran.
	CPU map[string]float64 `json:"cpu_s"`
}

// RealProc is the memory of one of the system's processes at the end of
// the run.
type RealProc struct {
	// Name is meshd, connectord, splice-edge, splice-inner or backend.
	Name string `json:"name"`
	// PID is its process id.
	PID int `json:"pid"`
	// StartRSSMiB is VmRSS before the first row (the system started and
	// answered one request through each path).
	StartRSSMiB float64 `json:"start_rss_mib"`
	// PeakRSSMiB is VmHWM and RSSMiB VmRSS from /proc/PID/status, read
	// after the last row, before the process is stopped.
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	RSSMiB     float64 `json:"rss_mib"`
	// IdleRSSMiB is VmRSS once more after RealReport.Settle without
	// load; zero when there was no second reading.
	IdleRSSMiB float64 `json:"idle_rss_mib,omitempty"`
	// CPUS is the process's whole CPU time (user and system), start-up
	// included, in seconds.
	CPUS float64 `json:"cpu_s"`
	// Exited reports that the process was stopped and reaped.
	Exited bool `json:"exited"`
}

// RealReport is the outcome of a real-binaries run.
type RealReport struct {
	// Machine describes where it ran.
	Machine Machine `json:"machine"`
	// Duration and Warmup are each row's recorded and unrecorded time
	// per round.
	Duration time.Duration `json:"duration_ns"`
	Warmup   time.Duration `json:"warmup_ns"`
	// Rounds is how many interleaved rounds ran.
	Rounds int `json:"rounds"`
	// Settle is the idle time before the second memory reading.
	Settle time.Duration `json:"settle_ns,omitempty"`
	// Rows are the merged rows, in run order.
	Rows []RealRow `json:"rows"`
	// Procs are the measured processes, in start order; empty when the
	// run failed before the last row.
	Procs []RealProc `json:"procs"`
}

// LoadArgs is what one load process (bench load) runs.
type LoadArgs struct {
	// URL is fetched with GET; its host is sent as the TLS server name
	// and Host header.
	URL string
	// Connect, if set, is the host:port every connection dials instead of
	// the URL's.
	Connect string
	// CAFile, if set, is a PEM file of the only CA the load trusts.
	CAFile string
	// Concurrency is the workers, one connection each; zero means 1.
	Concurrency int
	// Warmup is the unrecorded time after priming; zero means none.
	Warmup time.Duration
	// Duration is the recorded time; it must be positive.
	Duration time.Duration
	// BulkBytes, when positive, makes every request a download of that
	// many bytes whose length is checked; zero means a small GET.
	BulkBytes int64
	// Cookie, if set, is sent with every request.
	Cookie *http.Cookie
	// Bearer, if set, is sent with every request as Authorization: Bearer
	// (bench load reads it from POSTERN_BENCH_BEARER, never from a flag).
	Bearer string
}

// LoadResult is what a load process reports (as JSON on stdout).
type LoadResult struct {
	// Requests, Errors, RPS, P50 and P99 (ms) are as in Result; MiBs is
	// the body throughput of the measurement window.
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	RPS      float64 `json:"rps"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	MiBs     float64 `json:"mib_s,omitempty"`
	// Total is every request completed (priming and warm-up included);
	// Bytes the body bytes of the measurement window.
	Total int64 `json:"total"`
	Bytes int64 `json:"bytes"`
	// FirstError is the first failure's text; empty when none.
	FirstError string `json:"first_error,omitempty"`
}

// RunLoadProcess runs the load a LoadArgs describes in this process.
func RunLoadProcess(ctx context.Context, a LoadArgs) (LoadResult, error) {
	tr := directTransport(a.Concurrency)
	if a.Connect != "" {
		d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, a.Connect)
		}
	}
	if a.CAFile != "" {
		pem, err := os.ReadFile(a.CAFile)
		if err != nil {
			return LoadResult{}, fmt.Errorf("benchrun: load: %w", err)
		}
		pool := x509Pool(pem)
		if pool == nil {
			return LoadResult{}, fmt.Errorf("benchrun: load: no certificate in %s", a.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}
		tr = http1(tr, a.Concurrency)
	}
	c := noRedirect(&http.Client{Transport: tr})
	defer c.CloseIdleConnections()
	want := int64(-1)
	if a.BulkBytes > 0 {
		want = a.BulkBytes
	}
	done := new(atomic.Int64)
	lc := LoadConfig{Concurrency: a.Concurrency, Warmup: a.Warmup, Duration: a.Duration, Prime: a.BulkBytes == 0, Done: done}
	op := GetOp(c, a.URL, want, a.Cookie)
	if a.Bearer != "" {
		auth := []string{"Bearer " + a.Bearer} // a client holds its header, as a real one would
		op = getOp(c, a.URL, want, func(req *http.Request) { req.Header["Authorization"] = auth })
	}
	st, err := RunLoad(ctx, lc, op)
	if err != nil {
		return LoadResult{}, err
	}
	r := LoadResult{Requests: st.Requests, Errors: st.Errors, Total: done.Load(), Bytes: st.Bytes}
	if s := st.Elapsed.Seconds(); s > 0 {
		r.RPS = round(float64(st.Requests)/s, 1)
		r.MiBs = round(float64(st.Bytes)/(1<<20)/s, 1)
	}
	if st.Latency != nil && st.Latency.TotalCount() > 0 {
		r.P50 = round(float64(st.Latency.ValueAtQuantile(50))/1000, 3)
		r.P99 = round(float64(st.Latency.ValueAtQuantile(99))/1000, 3)
	}
	if st.FirstError != nil {
		r.FirstError = st.FirstError.Error()
	}
	return r, nil
}

// realSystem is the running processes of a real-binaries run.
type realSystem struct {
	dir, bin              string
	ca                    string // CA file
	backend, mesh, splice string // addresses
	meshTraced            string // address of the meshd with tracing on (realbin_traced.go)
	oauth2Proxy           string // address of the oauth2-proxy peer
	procs                 []*realProc
	// authSrv serves the JWKS of the keyset that signs cookie, as the
	// auth functions would (in the bench process: meshd fetches it at
	// start and on an unknown key id only, never per request).
	authSrv *http.Server
	cookie  *http.Cookie
	// issuerSrv serves the OIDC discovery document and keys of the
	// oauth2-proxy peer's provider; bearer is the token it verifies.
	issuerSrv *http.Server
	bearer    string
}

// realProc is one started process.
type realProc struct {
	name string
	cmd  *exec.Cmd
	// logs is the file that takes the process's stdout and stderr:
	// written by the kernel, so that neither the bench process nor its
	// memory pays for the processes' logs (each logs its requests at its
	// default level, as an operator runs it).
	logs string
	done chan struct{}
	err  error
}

// logTail is how much of a process's log an error quotes.
const logTail = 16 << 10

// tail returns the end of the process's log, for an error message.
func (p *realProc) tail() string {
	b, err := os.ReadFile(p.logs)
	if err != nil {
		return fmt.Sprintf("(log %s: %v)", p.logs, err)
	}
	if len(b) > logTail {
		b = append([]byte("…"), b[len(b)-logTail:]...)
	}
	return string(b)
}

// modulePath is this module's import path, for go build from anywhere in
// it.
const modulePath = "github.com/postern/postern"

// buildReal builds meshd, connectord and bench into dir/bin.
func buildReal(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "bin")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin+"/", modulePath+"/meshd", modulePath+"/connectord", modulePath+"/bench")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("benchrun: build the binaries: %w\n%s", err, out)
	}
	return bin, nil
}

// freeAddr returns a loopback TCP (or UDP) address free at the time of the
// call.
func freeAddr(network string) (string, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.LocalAddr().String(), nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// realHost is the external host of the benchmark app on meshd
// (passthrough); realAuthHost that of its pre-authenticated copy, on
// which every request carries an app cookie that meshd verifies, and
// that the policy authorises, before it goes through the tunnel.
const (
	realHost     = "open.localhost"
	realAuthHost = "secure.localhost"
	// realBearerHost is a third copy of the app that admits a workload's
	// bearer token from the bench issuer (the oauth2-proxy peer's, and
	// the same token), verified and authorised at meshd on every request.
	realBearerHost = "api.localhost"
	// realTenant and realUser are the home tenant of the catalogue and
	// the user the app cookie names, whom the policy allows.
	realTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	realUser   = realTenant + "/9a1c2b3d-0000-4000-8000-000000000001"
)

// startReal starts the backend, meshd and an enrolled connectord from the
// binaries in bin, with configuration and state in dir, and waits until a
// request through meshd reaches the backend.
func startReal(ctx context.Context, dir, bin, oauth2Proxy string) (_ *realSystem, err error) {
	s := &realSystem{dir: dir, bin: bin}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	ca, err := devcert.NewCA()
	if err != nil {
		return nil, err
	}
	cert, err := ca.Issue(realHost, realAuthHost, realBearerHost, "localhost", "127.0.0.1")
	if err != nil {
		return nil, err
	}
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return nil, err
	}
	if err := ca.WriteFiles(tlsDir, cert); err != nil {
		return nil, err
	}
	s.ca = filepath.Join(tlsDir, "ca.pem")
	if s.backend, err = freeAddr("tcp"); err != nil {
		return nil, err
	}
	if err := s.start(ctx, "backend", filepath.Join(bin, "bench"), "backend", "--listen", s.backend); err != nil {
		return nil, err
	}
	key := filepath.Join(dir, "authority.key")
	if _, _, err := s.run(ctx, nil, filepath.Join(bin, "meshd"), "authority", "init", "--out", key); err != nil {
		return nil, err
	}
	// The issuer of the bearer token (for postern-bearer and the
	// oauth2-proxy peer) is up before meshd reads the catalogue.
	issuer, err := s.startIssuer()
	if err != nil {
		return nil, err
	}
	cat := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(cat, []byte(fmt.Sprintf(`home_tenant: %s
connector_groups:
  - id: bench
issuers:
  - id: bench
    issuer: %s
apps:
  - id: open
    host: %s
    internal_url: http://%s
    connector_group: bench
    preauth: passthrough
  - id: secure
    host: %s
    internal_url: http://%s
    connector_group: bench
    preauth: entra
    policy:
      allow:
        users: ["%s"]
  - id: api
    host: %s
    internal_url: http://%s
    connector_group: bench
    preauth: entra
    bearer:
      workloads:
        - issuer: bench
          audiences: ["%s"]
    policy:
      allow:
        workloads:
          - issuer: bench
            claims:
              sub: %s
`, realTenant, issuer, realHost, s.backend, realAuthHost, s.backend, realUser,
		realBearerHost, s.backend, oauth2ProxyClientID, realBearerSubject)), 0o644); err != nil {
		return nil, err
	}
	authURL, err := s.startAuthKeys(cert)
	if err != nil {
		return nil, err
	}
	n := realNode{key: key, catalog: cat, tlsDir: tlsDir, authURL: authURL}
	if s.mesh, err = s.startNode(ctx, "", nil, n); err != nil {
		return nil, err
	}
	if err := s.startTraced(ctx, n); err != nil {
		return nil, err
	}
	c := s.client()
	defer c.CloseIdleConnections()
	if err := waitHTTPCookie(ctx, c, "https://"+realAuthHost+"/hello", s.cookie, s.proc("meshd")); err != nil {
		return nil, err
	}
	// Without the cookie the pre-authenticated app must not answer: the
	// postern-auth rows measure a real check, not a passthrough.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+realAuthHost+"/hello", nil)
	resp, err := noRedirect(&http.Client{Transport: c.Transport, Timeout: c.Timeout}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("benchrun: %s without a cookie: %w", realAuthHost, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil, fmt.Errorf("benchrun: %s answered 200 without a cookie: sign-in is not enforced", realAuthHost)
	}
	if err := s.checkBearer(ctx, c); err != nil {
		return nil, err
	}
	if err := s.startSplice(ctx); err != nil {
		return nil, err
	}
	if err := s.startOAuth2Proxy(ctx, oauth2Proxy, issuer); err != nil {
		return nil, err
	}
	return s, nil
}

// startAuthKeys generates the session keyset, serves its JWKS over TLS
// with cert at /.well-known/jwks.json, signs the benchmark user's app
// cookie for realAuthHost with it, and returns the base URL (the issuer).
func (s *realSystem) startAuthKeys(cert tls.Certificate) (string, error) {
	ks, err := session.GenerateKeyset()
	if err != nil {
		return "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	base := "https://" + l.Addr().String()
	jwks := ks.JWKS()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	})
	s.authSrv = &http.Server{Handler: mux, TLSConfig: devcert.ServerTLS(cert), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		// ErrServerClosed after stop; any other failure shows as meshd
		// failing to fetch the keys at start.
		_ = s.authSrv.ServeTLS(l, "", "")
	}()
	now := time.Now()
	tok, err := ks.Sign(session.TypeApp, session.AppClaims{
		Identity: session.Identity{Subject: realUser, TenantID: realTenant, Name: "Bench", AuthTime: now.Unix(), SessionID: "bench"},
		AppID:    "secure", Audience: realAuthHost, ReturnPath: "/", IssuedAt: now.Unix(), Expiry: now.Add(12 * time.Hour).Unix(), Issuer: base,
	})
	if err != nil {
		return "", err
	}
	s.cookie = &http.Cookie{Name: edge.AppCookie, Value: tok}
	return base, nil
}

// startSplice starts the two processes of the wgsplice peer and waits
// until a request through them reaches the backend.
func (s *realSystem) startSplice(ctx context.Context) error {
	var keys [2]wgkey.Private
	var ports [2]uint16
	for i := range keys {
		var err error
		if keys[i], err = wgkey.Generate(); err != nil {
			return err
		}
		a, err := freeAddr("udp")
		if err != nil {
			return err
		}
		ports[i] = netip.MustParseAddrPort(a).Port()
	}
	var err error
	if s.splice, err = freeAddr("tcp"); err != nil {
		return err
	}
	bench := filepath.Join(s.bin, "bench")
	env := func(k wgkey.Private) []string {
		return []string{"POSTERN_BENCH_WG_KEY=" + base64.StdEncoding.EncodeToString(k[:])}
	}
	if err := s.startEnv(ctx, "splice-inner", env(keys[1]), bench, "wgsplice", "--inner", "--udp", strconv.Itoa(int(ports[1])),
		"--peer", keys[0].Public().String(), "--backend", s.backend); err != nil {
		return err
	}
	if err := s.startEnv(ctx, "splice-edge", env(keys[0]), bench, "wgsplice", "--udp", strconv.Itoa(int(ports[0])),
		"--peer-udp", strconv.Itoa(int(ports[1])), "--peer", keys[1].Public().String(), "--listen", s.splice); err != nil {
		return err
	}
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	return waitHTTP(ctx, c, "http://"+s.splice+"/hello", s.proc("splice-edge"))
}

// client returns a client that reaches meshd for any host and trusts its
// CA.
func (s *realSystem) client() *http.Client { return s.clientTo(s.mesh) }

// clientTo returns a client that reaches the meshd at mesh for any host
// and trusts its CA.
func (s *realSystem) clientTo(mesh string) *http.Client {
	pem, _ := os.ReadFile(s.ca)
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509Pool(pem)},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, mesh)
		}}}
}

// waitHTTP polls url until it answers 200, p exits (an error with its
// log) or a minute passes.
func waitHTTP(ctx context.Context, c *http.Client, url string, p *realProc) error {
	return waitHTTPCookie(ctx, c, url, nil, p)
}

// waitHTTPCookie is waitHTTP sending cookie, if not nil, with each try.
func waitHTTPCookie(ctx context.Context, c *http.Client, url string, cookie *http.Cookie, p *realProc) error {
	if cookie == nil {
		return waitHTTPWith(ctx, c, url, nil, p)
	}
	return waitHTTPWith(ctx, c, url, func(req *http.Request) { req.AddCookie(cookie) }, p)
}

// waitHTTPWith is waitHTTP with auth, if not nil, adding credentials to
// each try.
func waitHTTPWith(ctx context.Context, c *http.Client, url string, auth func(*http.Request), p *realProc) error {
	c = noRedirect(&http.Client{Transport: c.Transport, Timeout: c.Timeout})
	deadline := time.Now().Add(time.Minute)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if auth != nil {
			auth(req)
		}
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("benchrun: %s exited before %s answered: %v\n%s", p.name, url, p.err, p.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("benchrun: %s did not answer 200 within a minute\n%s", url, p.tail())
		}
	}
}

// run runs a command to completion and returns its standard output and
// error.
func (s *realSystem) run(ctx context.Context, env []string, bin string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	dieWithParent(cmd)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("benchrun: %s %s: %w\n%s", filepath.Base(bin), args[0], err, errOut.String())
	}
	return out.String(), errOut.String(), nil
}

// start starts a long-running process named name.
func (s *realSystem) start(ctx context.Context, name, bin string, args ...string) error {
	return s.startEnv(ctx, name, nil, bin, args...)
}

// startEnv starts a long-running process named name with env added to
// this process's environment.
func (s *realSystem) startEnv(_ context.Context, name string, env []string, bin string, args ...string) error {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	dieWithParent(cmd)
	p := &realProc{name: name, cmd: cmd, logs: filepath.Join(s.dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.logs)
	if err != nil {
		return fmt.Errorf("benchrun: start %s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Start()
	_ = f.Close() // the child has its own descriptor
	if err != nil {
		return fmt.Errorf("benchrun: start %s: %w", name, err)
	}
	s.procs = append(s.procs, p)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return nil
}

// proc returns the process named name, or nil.
func (s *realSystem) proc(name string) *realProc {
	for _, p := range s.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

// stop sends SIGTERM to every process, newest first, waits up to 10 s for
// each, then kills it; it reports whether every one was reaped.
func (s *realSystem) stop() bool {
	for _, srv := range []*http.Server{s.authSrv, s.issuerSrv} {
		if srv != nil {
			_ = srv.Close() // only a key-set listener: nothing to report
		}
	}
	all := true
	for _, p := range slices.Backward(s.procs) {
		_ = p.cmd.Process.Signal(syscall.SIGTERM) // fails only when it already exited, which done shows
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill() // likewise
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				all = false
			}
		}
	}
	return all
}

// procCPU returns the CPU seconds (utime + stime) of pid from
// /proc/PID/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14 and stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("benchrun: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("benchrun: malformed /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("benchrun: /proc/%d/stat: %w", pid, err)
	}
	return (ut + st) / clockTicks, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// procMem returns VmHWM and VmRSS of pid in MiB.
func procMem(pid int) (peak, rss float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = f.Close() }() // read-only /proc file
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return 0, 0, fmt.Errorf("benchrun: /proc/%d/status %s: %w", pid, k, err)
		}
		if k == "VmHWM" {
			peak = round(kb/1024, 1)
		} else {
			rss = round(kb/1024, 1)
		}
	}
	return peak, rss, sc.Err()
}

// RealRowNames are the rows of a real-binaries run, in run order within a
// round: the latency rows (each at every concurrency level), then the
// one-stream bulk rows.
var RealRowNames = []string{"direct", "postern", "postern-traced", "postern-auth", "postern-bearer", "wg-splice", "oauth2-proxy",
	"bulk-direct", "bulk-postern", "bulk-wg-splice", "bulk-oauth2-proxy"}

// realTarget is one thing the load measures: where it connects and which
// processes serve it.
type realTarget struct {
	name, url, connect, ca string
	cookie                 *http.Cookie
	bearer                 string
	procs                  []string
}

// RunReal builds the binaries into cfg.Dir, starts the system, runs every
// row cfg.Rounds times interleaved (direct and postern at each
// concurrency, then their bulk rows; within each, every round starts one
// row later: roundOrder), reads the processes' memory, stops
// them and returns the report. It returns the rows completed so far with
// any error; the processes are stopped in every case.
func RunReal(ctx context.Context, cfg RealConfig) (rep RealReport, err error) {
	if cfg.Duration <= 0 || cfg.Warmup < 0 || cfg.Rounds < 0 || cfg.BulkBytes < 0 {
		return rep, fmt.Errorf("benchrun: real: duration %v, warm-up %v, rounds %d, bulk bytes %d: want a positive duration and no negatives",
			cfg.Duration, cfg.Warmup, cfg.Rounds, cfg.BulkBytes)
	}
	for _, r := range cfg.Rows {
		if !slices.Contains(RealRowNames, r) {
			return rep, fmt.Errorf("benchrun: real: unknown row %q (want one of %s)", r, strings.Join(RealRowNames, ", "))
		}
	}
	rounds, levels, bulk := max(cfg.Rounds, 1), cfg.Concurrency, cfg.BulkBytes
	if len(levels) == 0 {
		levels = []int{1, 32}
	}
	if bulk == 0 {
		bulk = DefaultBulkBytes
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	rep = RealReport{Machine: DescribeMachine(), Duration: cfg.Duration, Warmup: cfg.Warmup, Rounds: rounds, Settle: cfg.Settle}
	o2p := cfg.OAuth2Proxy
	if o2p == "" {
		if o2p, err = testkit.ToolPath("oauth2-proxy"); err != nil {
			return rep, fmt.Errorf("benchrun: real: the oauth2-proxy peer: %w (go install github.com/oauth2-proxy/oauth2-proxy/v7@%s; task bench:real does)",
				err, OAuth2ProxyVersion)
		}
	}
	bin, err := buildReal(ctx, cfg.Dir)
	if err != nil {
		return rep, err
	}
	sys, err := startReal(ctx, cfg.Dir, bin, o2p)
	if err != nil {
		return rep, err
	}
	defer func() {
		if len(rep.Procs) == 0 { // an error before the memory was read
			sys.stop()
		}
	}()
	targets := []realTarget{
		{name: "direct", url: "http://" + sys.backend, procs: []string{"backend"}},
		{name: "postern", url: "https://" + realHost, connect: sys.mesh, ca: sys.ca, procs: []string{"meshd", "connectord", "backend"}},
		{name: "postern-traced", url: "https://" + realHost, connect: sys.meshTraced, ca: sys.ca, procs: []string{"meshd-traced", "connectord-traced", "backend"}},
		{name: "postern-auth", url: "https://" + realAuthHost, connect: sys.mesh, ca: sys.ca, cookie: sys.cookie,
			procs: []string{"meshd", "connectord", "backend"}},
		{name: "postern-bearer", url: "https://" + realBearerHost, connect: sys.mesh, ca: sys.ca, bearer: sys.bearer,
			procs: []string{"meshd", "connectord", "backend"}},
		{name: "wg-splice", url: "http://" + sys.splice, procs: []string{"splice-edge", "splice-inner", "backend"}},
		{name: "oauth2-proxy", url: "http://" + sys.oauth2Proxy, bearer: sys.bearer, procs: []string{"oauth2-proxy", "backend"}},
	}
	type spec struct {
		t    realTarget
		c    int
		bulk bool
	}
	var specs []spec
	want := func(name string) bool { return len(cfg.Rows) == 0 || slices.Contains(cfg.Rows, name) }
	for _, c := range levels {
		for _, t := range targets {
			if want(t.name) {
				specs = append(specs, spec{t, c, false})
			}
		}
	}
	for _, t := range targets {
		// Bulk through the auth paths adds one check per download, through
		// the traced pair one span per download: nothing to see.
		if t.cookie == nil && t.name != "postern-traced" && t.name != "postern-bearer" && want("bulk-"+t.name) {
			specs = append(specs, spec{t, 1, true})
		}
	}
	start := map[string]float64{}
	for _, p := range sys.procs {
		_, rss, err := procMem(p.cmd.Process.Pid)
		if err != nil {
			return rep, err
		}
		start[p.name] = rss
	}
	rows := make([]RealRow, len(specs))
	for i, sp := range specs {
		rows[i] = RealRow{Target: sp.t.name, Bulk: sp.bulk, Concurrency: sp.c}
	}
	defer func() { rep.Rows = finishReal(rows) }()
	for r := range rounds {
		sameGroup := func(i, j int) bool { return specs[i].c == specs[j].c && specs[i].bulk == specs[j].bulk }
		for _, i := range roundOrder(len(specs), r, sameGroup) {
			sp := specs[i]
			a := LoadArgs{URL: sp.t.url + "/hello", Connect: sp.t.connect, CAFile: sp.t.ca, Cookie: sp.t.cookie, Bearer: sp.t.bearer, Concurrency: sp.c,
				Warmup: cfg.Warmup, Duration: cfg.Duration}
			if sp.bulk {
				a.URL, a.BulkBytes, a.Warmup = fmt.Sprintf("%s/download?bytes=%d&seed=1", sp.t.url, bulk), bulk, 0
			}
			round, err := sys.measure(ctx, bin, a, sp.t.procs)
			if err != nil {
				return rep, err
			}
			rows[i].Rounds = append(rows[i].Rounds, round)
			fmt.Fprintf(progress, "[%d/%d] %s\n", r+1, rounds, round.summary(rows[i]))
		}
	}
	for _, p := range sys.procs {
		name := p.name
		peak, rss, err := procMem(p.cmd.Process.Pid)
		if err != nil {
			return rep, err
		}
		cpu, _ := procCPU(p.cmd.Process.Pid)
		rep.Procs = append(rep.Procs, RealProc{Name: name, PID: p.cmd.Process.Pid, StartRSSMiB: start[name], PeakRSSMiB: peak, RSSMiB: rss,
			CPUS: round(cpu, 2)})
	}
	if cfg.Settle > 0 {
		select {
		case <-time.After(cfg.Settle):
		case <-ctx.Done():
			return rep, ctx.Err()
		}
		for i, p := range sys.procs {
			if _, rep.Procs[i].IdleRSSMiB, err = procMem(p.cmd.Process.Pid); err != nil {
				return rep, err
			}
		}
	}
	all := sys.stop()
	for i := range rep.Procs {
		select {
		case <-sys.proc(rep.Procs[i].Name).done:
			rep.Procs[i].Exited = true
		default:
		}
	}
	if !all {
		return rep, fmt.Errorf("benchrun: real: a process did not exit after SIGKILL")
	}
	return rep, nil
}

func (r RealRound) summary(row RealRow) string {
	s := fmt.Sprintf("%s c=%d rps=%.1f p50=%.3fms p99=%.3fms errors=%d", row.Target, row.Concurrency, r.RPS, r.P50, r.P99, r.Errors)
	if row.Bulk {
		s = fmt.Sprintf("bulk-%s mib_s=%.1f errors=%d", row.Target, r.MiBs, r.Errors)
	}
	if r.FirstError != "" {
		s += fmt.Sprintf(" first_error=%q", r.FirstError)
	}
	return s
}

// measure runs one load process with a and returns what it reported, with
// the CPU seconds each of procs used while it ran.
func (s *realSystem) measure(ctx context.Context, bin string, a LoadArgs, procs []string) (RealRound, error) {
	args := []string{"load", "--url", a.URL, "--concurrency", strconv.Itoa(a.Concurrency), "--warmup", a.Warmup.String(),
		"--duration", a.Duration.String(), "--bulk-bytes", strconv.FormatInt(a.BulkBytes, 10)}
	if a.Connect != "" {
		args = append(args, "--connect", a.Connect)
	}
	if a.CAFile != "" {
		args = append(args, "--ca", a.CAFile)
	}
	if a.Cookie != nil {
		args = append(args, "--cookie", a.Cookie.Name+"="+a.Cookie.Value)
	}
	before := map[string]float64{}
	for _, n := range procs {
		p := s.proc(n)
		v, err := procCPU(p.cmd.Process.Pid)
		if err != nil {
			return RealRound{}, fmt.Errorf("benchrun: %s: %w\n%s", n, err, p.tail())
		}
		before[n] = v
	}
	var env []string
	if a.Bearer != "" {
		env = append(env, "POSTERN_BENCH_BEARER="+a.Bearer)
	}
	out, _, err := s.run(ctx, env, filepath.Join(bin, "bench"), args...)
	if err != nil {
		return RealRound{}, err
	}
	var r RealRound
	if err := json.Unmarshal([]byte(lastLine(out)), &r.LoadResult); err != nil {
		return RealRound{}, fmt.Errorf("benchrun: load process output: %w\n%s", err, out)
	}
	r.CPU = map[string]float64{}
	for _, n := range procs {
		v, err := procCPU(s.proc(n).cmd.Process.Pid)
		if err != nil {
			return RealRound{}, err
		}
		r.CPU[n] = v - before[n]
	}
	return r, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// finishReal computes each row's medians, CPU per unit and ratios to the
// direct row.
func finishReal(rows []RealRow) []RealRow {
	var out []RealRow
	for _, r := range rows {
		if len(r.Rounds) == 0 {
			continue
		}
		var rps, p50, p99, mibs []float64
		cpu := map[string]float64{}
		var total, bytes int64
		for _, x := range r.Rounds {
			rps, p50, p99, mibs = append(rps, x.RPS), append(p50, x.P50), append(p99, x.P99), append(mibs, x.MiBs)
			for k, v := range x.CPU {
				cpu[k] += v
			}
			total += x.Total
			bytes += x.Bytes
			r.Errors += x.Errors
		}
		r.RPS, r.P50, r.P99 = median(rps), median(p50), median(p99)
		if r.Bulk {
			r.MiBs = ptr(median(mibs))
			if bytes > 0 {
				r.CPUPerGiB = perUnit(cpu, float64(bytes)/(1<<30))
			}
		} else if total > 0 {
			r.CPUPer10k = perUnit(cpu, float64(total)/10_000)
		}
		out = append(out, r)
	}
	for i := range out {
		r := &out[i]
		if r.Target == "direct" {
			continue
		}
		for _, d := range out {
			if (r.Target == "postern-auth" || r.Target == "postern-bearer" || r.Target == "postern-traced") && d.Target == "postern" && !d.Bulk && !r.Bulk && d.Concurrency == r.Concurrency && d.RPS > 0 {
				q := r.RPS / d.RPS
				if p, ok := pairedRatio(roundRPS(r.Rounds), roundRPS(d.Rounds)); ok {
					q = p // rounds ran at the same time: their ratios are steadier
				}
				r.RatioToPostern = ptr(round(q, 3))
				if c := proxyCPU(d.CPUPer10k); r.Target == "postern-traced" && c > 0 {
					r.CPURatioToPostern = ptr(round(proxyCPU(r.CPUPer10k)/c, 3))
				}
			}
			if d.Target != "direct" || d.Bulk != r.Bulk || d.Concurrency != r.Concurrency {
				continue
			}
			switch {
			case r.Bulk && d.MiBs != nil && *d.MiBs > 0:
				r.RatioToDirect = ptr(round(*r.MiBs / *d.MiBs, 3))
			case !r.Bulk && d.RPS > 0 && d.P50 > 0:
				r.RatioToDirect = ptr(round(r.RPS/d.RPS, 3))
				r.P50RatioToDirect = ptr(round(r.P50/d.P50, 3))
			}
		}
	}
	return out
}

func perUnit(cpu map[string]float64, units float64) map[string]float64 {
	m := map[string]float64{}
	for k, v := range cpu {
		m[k] = round(v/units, 3)
	}
	return m
}

// roundOrder returns the order of n rows in round r: rows of one group
// (the same concurrency, or the bulk rows) stay together and in place, and
// within a group each round starts one row later, so that no row always
// runs first (after another concurrency's rows, or the start) on a machine
// whose speed drifts.
func roundOrder(n, r int, sameGroup func(i, j int) bool) []int {
	var order []int
	for start := 0; start < n; {
		end := start + 1
		for end < n && sameGroup(start, end) {
			end++
		}
		size := end - start
		for j := range size {
			order = append(order, start+(j+r)%size)
		}
		start = end
	}
	return order
}

// roundRPS returns each round's req/s.
func roundRPS(rounds []RealRound) []float64 {
	out := make([]float64, len(rounds))
	for k, x := range rounds {
		out[k] = x.RPS
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Write writes the report as dir/real.json and dir/real.md, creating dir.
func (r RealReport) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("benchrun: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("benchrun: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "real.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("benchrun: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "real.md"), []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("benchrun: %w", err)
	}
	return nil
}

// Markdown renders the report: the rows (medians over the rounds) with
// their ratios to direct and CPU per unit, then the processes' memory.
func (r RealReport) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Real binaries: %s, %d cores, %s; %d interleaved rounds of %v (warm-up %v); figures are medians over the rounds.\n\n",
		r.Machine.CPU, r.Machine.Cores, r.Machine.GoVersion, r.Rounds, r.Duration, r.Warmup)
	b.WriteString("| row | c | req/s | p50 ms | p99 ms | MiB/s | ÷ direct (req/s or MiB/s) | p50 ÷ direct | req/s ÷ postern | CPU/10k ÷ postern | proxy CPU s per 10k requests | proxy CPU s per GiB | errors |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|--:|\n")
	for _, x := range r.Rows {
		name := x.Target
		if x.Bulk {
			name = "bulk-" + name
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", name, x.Concurrency,
			ifNot(x.Bulk, strconv.FormatFloat(x.RPS, 'f', 0, 64)), ifNot(x.Bulk, strconv.FormatFloat(x.P50, 'f', 3, 64)),
			ifNot(x.Bulk, strconv.FormatFloat(x.P99, 'f', 3, 64)), optional(x.MiBs, 1), optional(x.RatioToDirect, 3),
			optional(x.P50RatioToDirect, 3), optional(x.RatioToPostern, 3), optional(x.CPURatioToPostern, 3), perProc(x.CPUPer10k), perProc(x.CPUPerGiB), x.Errors)
	}
	fmt.Fprintf(&b, "\n| process | RSS before the rows MiB (VmRSS) | peak RSS MiB (VmHWM) | RSS after the run MiB (VmRSS) | RSS after %v idle MiB | CPU s, whole run | stopped and reaped |\n|---|--:|--:|--:|--:|--:|---|\n", r.Settle)
	for _, p := range r.Procs {
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %.1f | %s | %.2f | %s |\n", p.Name, p.StartRSSMiB, p.PeakRSSMiB, p.RSSMiB,
			ifNot(r.Settle == 0, strconv.FormatFloat(p.IdleRSSMiB, 'f', 1, 64)), p.CPUS, yesNo(&p.Exited))
	}
	return b.String()
}

func ifNot(cond bool, s string) string {
	if cond {
		return ""
	}
	return s
}

// realProcNames are the measured processes in report order.
var realProcNames = []string{"meshd", "connectord", "meshd-traced", "connectord-traced", "splice-edge", "splice-inner", "oauth2-proxy", "backend"}

// proxyCPU is the sum of m's figures but the backend's: the proxy
// processes' CPU.
func proxyCPU(m map[string]float64) float64 {
	var total float64
	for n, v := range m {
		if n != "backend" {
			total += v
		}
	}
	return total
}

// perProc renders CPU figures as "proxy total (each proxy process);
// backend b", the proxy processes in realProcNames order.
func perProc(m map[string]float64) string {
	if len(m) == 0 {
		return ""
	}
	var total float64
	var parts []string
	for _, n := range realProcNames {
		if v, ok := m[n]; ok && n != "backend" {
			total += v
			parts = append(parts, fmt.Sprintf("%s %.3f", n, v))
		}
	}
	out := fmt.Sprintf("backend %.3f", m["backend"])
	if len(parts) > 0 {
		out = fmt.Sprintf("%.3f (%s); ", total, strings.Join(parts, ", ")) + out
	}
	return out
}
