package harness

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/postern/postern/pkg/connector"
	"github.com/postern/postern/pkg/devcert"
	"github.com/postern/postern/pkg/devidp"
	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/wgkey"
)

// saToken mints a ServiceAccount token of the accepted service account for
// pod, valid for ttl, with the claims in over replacing the usual ones.
func saToken(t *testing.T, is *devidp.WorkloadIssuer, pod string, ttl time.Duration, over map[string]any) string {
	t.Helper()
	c := devidp.KubernetesClaims(ServiceAccountNamespace, ServiceAccountName, pod, ServiceAccountAudience)
	maps.Copy(c, over)
	tok, err := is.Mint(c, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// forge returns a token with header hdr and claims, signed with HMAC-SHA256
// keyed with secret (alg HS256), or unsigned (alg none, secret nil).
func forge(t *testing.T, kid string, claims map[string]any, secret []byte) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	if secret == nil {
		hdr, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": kid})
		return base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestServiceAccountEnrolmentHostile: the mesh, with a connector group
// that trusts a cluster's service-account issuer (the stand-in serving
// discovery and JWKS over HTTPS), enrols a connector with a projected
// ServiceAccount token of the allowed subject and audience, for the
// group's short credential lifetime; it refuses every other token, each
// with its code: another issuer (one that copies the trusted iss but signs
// with its own key included), the wrong audience, another subject, a token
// for another group, expired (a replay after its exp), not yet valid,
// without exp, valid for a year, alg none, HS256 (keyed with the issuer's
// public key, the classic confusion), a tampered payload. No refusal
// enrols anything. Once the operator removes the subject from the group,
// the connector's credential attaches no more and the token enrols no
// more.
func TestServiceAccountEnrolmentHostile(t *testing.T) {
	h := start(t, Options{Connectors: -1, ServiceAccounts: true})
	ctx := t.Context()
	is := h.ServiceAccountIssuer()
	good := saToken(t, is, "connectord-0", 10*time.Minute, nil)
	jws, err := jose.ParseSignedCompact(good, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	kid := jws.Signatures[0].Header.KeyID
	claims := devidp.KubernetesClaims(ServiceAccountNamespace, ServiceAccountName, "connectord-0", ServiceAccountAudience)
	now := time.Now()
	claims["iss"], claims["iat"], claims["exp"] = is.Issuer(), now.Unix(), now.Add(10*time.Minute).Unix()

	// Another issuer on loopback, and one that claims the trusted issuer's
	// name but signs with its own key.
	evil, err := devidp.ListenWorkloadIssuer("127.0.0.1:0", devcert.ServerTLS(h.cert), "https://evil.localhost:{port}")
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	impostor, err := devidp.NewWorkloadIssuer(is.Issuer(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pubJWK := jose.JSONWebKey{Key: fetchIssuerKey(t, h, is.Issuer(), kid)}
	pubDER, err := pubJWK.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	tampered := map[string]any{}
	maps.Copy(tampered, claims)
	tampered["sub"] = "system:serviceaccount:postern:admin"
	tamperedPayload, _ := json.Marshal(tampered)

	tests := []struct {
		name, group, token, code string
	}{
		{"another issuer", PodsGroup, saToken(t, evil, "p", 10*time.Minute, nil), enroll.CodeWorkloadNotAllowed},
		{"the trusted iss signed by another key", PodsGroup, saToken(t, impostor, "p", 10*time.Minute, nil), enroll.CodeWorkloadTokenInvalid},
		{"wrong audience", PodsGroup, saToken(t, is, "p", 10*time.Minute, map[string]any{"aud": []string{"https://kubernetes.default.svc"}}), enroll.CodeWorkloadTokenInvalid},
		{"another subject", PodsGroup, saToken(t, is, "p", 10*time.Minute, map[string]any{"sub": "system:serviceaccount:postern:default"}), enroll.CodeWorkloadNotAllowed},
		{"token for another group", OtherPodsGroup, good, enroll.CodeWorkloadNotAllowed},
		{"group without workload enrolment", "hq", good, enroll.CodeWorkloadNotAllowed},
		{"group not in the catalogue", "nowhere", good, enroll.CodeWorkloadNotAllowed},
		{"expired: a replay after its exp", PodsGroup, saToken(t, is, "p", 0, map[string]any{"iat": now.Add(-2 * time.Hour).Unix(), "nbf": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()}), enroll.CodeWorkloadTokenInvalid},
		{"not yet valid", PodsGroup, saToken(t, is, "p", 0, map[string]any{"nbf": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()}), enroll.CodeWorkloadTokenInvalid},
		{"no exp", PodsGroup, saToken(t, is, "p", 0, map[string]any{"exp": nil}), enroll.CodeWorkloadTokenInvalid},
		{"valid for a year", PodsGroup, saToken(t, is, "p", 365*24*time.Hour, nil), enroll.CodeWorkloadTokenInvalid},
		{"alg none", PodsGroup, forge(t, kid, claims, nil), enroll.CodeWorkloadTokenInvalid},
		{"HS256 keyed with the issuer's public key", PodsGroup, forge(t, kid, claims, pubDER), enroll.CodeWorkloadTokenInvalid},
		{"tampered payload", PodsGroup, parts[0] + "." + base64.RawURLEncoding.EncodeToString(tamperedPayload) + "." + parts[2], enroll.CodeWorkloadTokenInvalid},
		{"not a JWT", PodsGroup, "not-a-token", enroll.CodeWorkloadTokenInvalid},
	}
	key, err := wgkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cl := &enroll.Client{BaseURL: h.Meshes()[0].URL, HTTPClient: h.APIClient()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cl.EnrollWorkload(ctx, tt.token, tt.group, key, "hostile")
			var ae *enroll.APIError
			if !errors.As(err, &ae) || ae.Code != tt.code {
				t.Fatalf("got %v, want %s", err, tt.code)
			}
			if strings.Contains(ae.Message, tt.token) {
				t.Errorf("the refusal repeats the token: %s", ae.Message)
			}
		})
	}
	// Nothing was enrolled by the refusals; the good token enrols, for the
	// group's short lifetime (1h by default), not the 30 days of a
	// one-time token's credential.
	resp, err := cl.EnrollWorkload(ctx, good, PodsGroup, key, "connectord-0")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Group != PodsGroup || resp.Expires.After(time.Now().Add(time.Hour+time.Minute)) {
		t.Fatalf("enrolled in %s until %v, want %s for at most an hour", resp.Group, resp.Expires, PodsGroup)
	}
	att := &enroll.Client{BaseURL: h.Meshes()[0].URL, HTTPClient: h.APIClient(), Key: key}
	if _, err := att.Attach(ctx, resp.Credential); err != nil {
		t.Fatalf("attach with the workload credential: %v", err)
	}
	// The operator removes the subject from the group: the credential
	// attaches no more (nor renews), and the token enrols no more.
	cat, err := os.ReadFile(h.CatalogPath)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(cat), `subjects: ["`+ServiceAccountSubject+`"]`, `subjects: ["system:serviceaccount:postern:someone-else"]`, 1)
	if changed == string(cat) {
		t.Fatal("the catalogue does not hold the subject")
	}
	if err := os.WriteFile(h.CatalogPath, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, time.Minute, "the workload credential refused once its subject left the catalogue", func() bool {
		var ae *enroll.APIError
		_, err := att.Attach(ctx, resp.Credential)
		return errors.As(err, &ae) && ae.Code == enroll.CodeWorkloadNotAllowed
	}, func() string { return "the mesh still accepts it" })
	var ae *enroll.APIError
	if _, err := cl.EnrollWorkload(ctx, good, PodsGroup, key, "connectord-0"); !errors.As(err, &ae) || ae.Code != enroll.CodeWorkloadNotAllowed {
		t.Fatalf("enrol after the subject was removed: got %v, want %s", err, enroll.CodeWorkloadNotAllowed)
	}
}

// fetchIssuerKey returns the public key kid of the issuer's JWKS.
func fetchIssuerKey(t *testing.T, h *Harness, issuer, kid string) any {
	t.Helper()
	resp, err := h.saClient.Get(issuer + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	keys := set.Key(kid)
	if len(keys) != 1 {
		t.Fatalf("issuer has no key %s", kid)
	}
	return keys[0].Key
}

// podProc is one connectord process of the "Deployment": its state
// directory (the pod's emptyDir), token file (the projected volume),
// admin address and logs.
type podProc struct {
	name, state, token, admin string
	cmd                       *exec.Cmd
	done                      chan error
	logs                      *SyncBuffer
}

// startPod runs the real connectord as the chart's Deployment does:
// enrol by the ServiceAccount token file at start, drain and leave on
// SIGTERM.
func startPod(t *testing.T, h *Harness, bin, ca string, p *podProc) {
	t.Helper()
	p.cmd = exec.Command(bin, "run", "--state-dir", p.state, "--mesh", h.Meshes()[0].URL, "--mesh-ca", ca,
		"--enroll-oidc-token-file", p.token, "--enroll-group", PodsGroup,
		"--admin", p.admin, "--allow", "127.0.0.1", "--drain-timeout", "5s")
	p.logs = &SyncBuffer{}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan error, 1)
	go func() { p.done <- p.cmd.Wait() }()
	cmd, done := p.cmd, p.done
	t.Cleanup(func() {
		cmd.Process.Kill()
		err := <-done
		done <- err
	})
}

func (p *podProc) ready() bool {
	resp, err := http.Get("http://" + p.admin + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// exited waits for the process to end and returns its error.
func (p *podProc) exited(t *testing.T) error {
	t.Helper()
	var err error
	testkit.WaitFor(t, 2*time.Minute, p.name+" exited", func() bool {
		select {
		case err = <-p.done:
			p.done <- err
			return true
		default:
			return false
		}
	}, p.logs.String)
	return err
}

// TestServiceAccountConnectorsLifecycle runs two real connectord processes
// as the chart's Deployment runs its pods: each enrols with its own
// projected ServiceAccount token file (no one-time token anywhere), they
// serve the group's app, each renews its short credential through the
// tunnel before it expires (the mesh's 8s cap stands in for the group's
// hour) and the renewal stays short; a pod restarted after its credential
// expired reads the token file again (an expired token there is refused,
// the rotated one enrols it); and on SIGTERM a pod drains, leaves (the
// mesh revokes its credential: attach and node listing with it are
// refused) and removes its key and state, while the other pod keeps
// serving.
func TestServiceAccountConnectorsLifecycle(t *testing.T) {
	const ttl = 8 * time.Second
	h := start(t, Options{Connectors: -1, ServiceAccounts: true, CredentialTTL: ttl})
	dir := t.TempDir()
	bin := buildConnectord(t, dir, "1.0.0")
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, h.CA.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	is := h.ServiceAccountIssuer()
	pods := make([]*podProc, 2)
	for i := range pods {
		p := &podProc{name: fmt.Sprintf("connectord-%d", i), state: filepath.Join(dir, fmt.Sprintf("pod%d", i)),
			token: filepath.Join(dir, fmt.Sprintf("token%d", i)), admin: testkit.FreeAddr(t)}
		writeToken(t, p.token, saToken(t, is, p.name, 10*time.Minute, nil))
		startPod(t, h, bin, ca, p)
		pods[i] = p
	}
	for _, p := range pods {
		testkit.WaitFor(t, time.Minute, p.name+" enrolled by its ServiceAccount token and ready", p.ready, p.logs.String)
	}
	get := func() int {
		t.Helper()
		_, port, _ := net.SplitHostPort(h.Meshes()[0].Addr)
		resp, err := h.MeshClient(0).Get("https://" + PodsAppHost + ":" + port + "/hello")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != http.StatusOK {
		t.Fatalf("the group's app through the pods: %d", code)
	}

	// Renewal: short, and kept short.
	first, err := connector.LoadState(pods[0].state)
	if err != nil {
		t.Fatal(err)
	}
	if life := first.CredentialExpires.Sub(first.CredentialIssued); life > ttl+time.Second {
		t.Fatalf("credential lives %v, want at most %v", life, ttl)
	}
	var renewed *connector.State
	testkit.WaitFor(t, time.Minute, "pod 0 renewed its credential", func() bool {
		renewed, err = connector.LoadState(pods[0].state)
		return err == nil && renewed.Credential != first.Credential
	}, pods[0].logs.String)
	if !renewed.CredentialExpires.After(first.CredentialExpires) || renewed.CredentialExpires.Sub(renewed.CredentialIssued) > ttl+time.Second {
		t.Fatalf("renewed credential %v..%v, want later than %v and at most %v long", renewed.CredentialIssued, renewed.CredentialExpires, first.CredentialExpires, ttl)
	}

	// A pod killed without a goodbye whose credential expires (within the
	// minute: the 8s life): at its next start it reads the token file
	// again. An expired token there is
	// refused; the kubelet's rotated token enrols it.
	p1 := pods[1]
	p1.cmd.Process.Kill()
	p1.exited(t)
	st, err := connector.LoadState(p1.state)
	if err != nil {
		t.Fatal(err)
	}
	if st.CredentialExpires.After(time.Now().Add(time.Minute)) {
		t.Fatalf("pod 1's credential expires %v, not within the minute in which a start enrols again", st.CredentialExpires)
	}
	writeToken(t, p1.token, saToken(t, is, p1.name, 0, map[string]any{"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()}))
	startPod(t, h, bin, ca, p1)
	if err := p1.exited(t); err == nil || !strings.Contains(p1.logs.String(), enroll.CodeWorkloadTokenInvalid) {
		t.Fatalf("a start with an expired token in the file: exit %v, want a refusal (%s)\n%s", err, enroll.CodeWorkloadTokenInvalid, p1.logs.String())
	}
	writeToken(t, p1.token, saToken(t, is, p1.name, 10*time.Minute, nil))
	startPod(t, h, bin, ca, p1)
	testkit.WaitFor(t, time.Minute, "pod 1 enrolled again with the rotated token", p1.ready, p1.logs.String)

	// SIGTERM: drain, then leave.
	p0 := pods[0]
	last, err := connector.LoadState(p0.state)
	if err != nil {
		t.Fatal(err)
	}
	key, err := wgkey.LoadOrCreate(filepath.Join(p0.state, "wg.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p0.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p0.exited(t); err != nil {
		t.Fatalf("pod 0 after SIGTERM: %v\n%s", err, p0.logs.String())
	}
	logs := p0.logs.String()
	if !strings.Contains(logs, `"msg":"drain_done"`) || !strings.Contains(logs, `"msg":"connector_left"`) ||
		strings.Index(logs, `"msg":"drain_done"`) > strings.Index(logs, `"msg":"connector_left"`) {
		t.Fatalf("pod 0 did not drain and then leave:\n%s", logs)
	}
	for _, f := range []string{"wg.key", "state.json"} {
		if _, err := os.Stat(filepath.Join(p0.state, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left in the pod's state after leaving: %v", f, err)
		}
	}
	cl := &enroll.Client{BaseURL: h.Meshes()[0].URL, HTTPClient: h.APIClient(), Key: key}
	var ae *enroll.APIError
	if _, err := cl.Attach(t.Context(), last.Credential); !errors.As(err, &ae) || ae.Code != enroll.CodeConnectorRevoked {
		t.Fatalf("attach with the credential of the pod that left: got %v, want %s", err, enroll.CodeConnectorRevoked)
	}
	if _, err := cl.Nodes(t.Context(), last.Credential); !errors.As(err, &ae) || ae.Code != enroll.CodeConnectorRevoked {
		t.Fatalf("node list with the credential of the pod that left: got %v, want %s", err, enroll.CodeConnectorRevoked)
	}
	testkit.WaitFor(t, time.Minute, "the group's app served by the remaining pod", func() bool { return get() == http.StatusOK }, pods[1].logs.String)
	// Every line the pods wrote follows docs/logs.md.
	schema := logSchema(t)
	for _, p := range pods {
		checkLogSchema(t, schema, testkit.Records(t, p.logs.String(), nil))
	}
}

func writeToken(t *testing.T, path, tok string) {
	t.Helper()
	// Written as the kubelet writes a projected volume: a new file
	// swapped in.
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
