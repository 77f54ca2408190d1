package harness

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/connector"
	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/revoke"
	"github.com/postern/postern/pkg/streambind"
	"github.com/postern/postern/pkg/wgkey"
)

// connectorKey returns connector i's credential and WireGuard key, as a
// thief with the host's files would have them.
func connectorKey(t testing.TB, h *Harness, i int) (string, string, wgkey.Private) {
	t.Helper()
	c := h.Connectors()[i]
	st, err := connector.LoadState(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := wgkey.Load(filepath.Join(c.Dir, "wg.key"))
	if err != nil {
		t.Fatal(err)
	}
	return st.ConnectorID, st.Credential, key
}

// attached reports whether mesh node 0 holds connector id.
func attached(h *Harness, id string) bool {
	for _, c := range h.Meshes()[0].Node.Status().Connectors {
		if c.ID == id {
			return true
		}
	}
	return false
}

func metricsOf(t testing.TB, h *Harness) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.Meshes()[0].Node.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// TestRevokedConnectorDetached revokes a connector with the admin
// command's signed revocation: the node detaches it at once while the
// other connector keeps the app served, and refuses its attach, however
// well it proves its key.
func TestRevokedConnectorDetached(t *testing.T) {
	h := start(t, Options{Connectors: 2})
	id, cred, key := connectorKey(t, h, 0)
	l := startLoad(t.Context(), h.MeshClient(0), h.AppURL(0, "/hello"), 2)
	now := time.Now()
	proof, err := h.Authority.SignRevocation(revoke.Connector(id, now, 0))
	if err != nil {
		t.Fatal(err)
	}
	api := &enroll.Client{BaseURL: h.Meshes()[0].URL, HTTPClient: h.APIClient()}
	if _, err := api.Revoke(t.Context(), proof); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(t.Context(), 10*time.Second, func() bool { return !attached(h, id) }); err != nil {
		t.Fatal("the revoked connector is still attached")
	}
	target := l.ok.Load() + 50
	if err := WaitFor(t.Context(), 20*time.Second, func() bool { return l.ok.Load() >= target }); err != nil {
		t.Fatal("the app is not served by the other connector")
	}
	l.halt()
	if f := l.failed.Load(); f != 0 {
		t.Errorf("%d requests failed while a connector was revoked: %v", f, first(l.errs, 3))
	}
	cl := &enroll.Client{BaseURL: h.Meshes()[0].URL, HTTPClient: h.APIClient(), Key: key}
	var ae *enroll.APIError
	if _, err := cl.Attach(t.Context(), cred); !errors.As(err, &ae) || ae.Code != enroll.CodeConnectorRevoked {
		t.Fatalf("attach of the revoked connector: got %v, want %s", err, enroll.CodeConnectorRevoked)
	}
	if attached(h, id) {
		t.Fatal("the revoked connector got back in")
	}
	m := metricsOf(t, h)
	if !strings.Contains(m, `postern_revocation_refusals_total{what="api"} `) || strings.Contains(m, `postern_revocation_refusals_total{what="api"} 0`) {
		t.Errorf("the refused attach is not counted")
	}
	for _, want := range []string{`postern_connectors_detached_total{reason="revoked"} 1`, `postern_revocations_total{kind="connector",source="admin"} 1`,
		`postern_revocation_entries{kind="connector"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestGroupRemovedDetachesConnectors removes a connector group from the
// catalogue: its connector is detached and cannot attach again, and no
// new token for the group enrols.
func TestGroupRemovedDetachesConnectors(t *testing.T) {
	h := start(t, Options{ExtraCatalog: "", Connectors: 1})
	base, err := readFile(h.CatalogPath)
	if err != nil {
		t.Fatal(err)
	}
	withTemp := strings.Replace(base, "connector_groups:\n", "connector_groups:\n  - id: temp\n", 1)
	swapCatalog(t, h, withTemp)
	if _, err := h.AddConnector(t.Context(), "temp"); err != nil {
		t.Fatal(err)
	}
	id, cred, key := connectorKey(t, h, 1)
	tok, _, err := h.Authority.MintEnrollToken("temp", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	swapCatalog(t, h, base)
	if err := WaitFor(t.Context(), 10*time.Second, func() bool { return !attached(h, id) }); err != nil {
		t.Fatal("the connector of the removed group is still attached")
	}
	cl := &enroll.Client{BaseURL: h.Meshes()[0].URL, HTTPClient: h.APIClient(), Key: key}
	var ae *enroll.APIError
	if _, err := cl.Attach(t.Context(), cred); !errors.As(err, &ae) || ae.Code != enroll.CodeGroupUnknown {
		t.Fatalf("attach in a removed group: got %v, want %s", err, enroll.CodeGroupUnknown)
	}
	nk, _ := wgkey.Generate()
	if _, err := cl.Enroll(t.Context(), tok, nk, "late"); !errors.As(err, &ae) || ae.Code != enroll.CodeGroupUnknown {
		t.Fatalf("enrol into a removed group: got %v, want %s", err, enroll.CodeGroupUnknown)
	}
	if !strings.Contains(metricsOf(t, h), `postern_connectors_detached_total{reason="group_removed"} 1`) {
		t.Error("the detach is not counted")
	}
	if resp, _ := get(t, h.MeshClient(0), h.AppURL(0, "/hello")); resp.StatusCode != http.StatusOK {
		t.Fatalf("the other group's app: %d", resp.StatusCode)
	}
}

// TestStolenCredentialAndMeshNodeKeys: a thief with a connector's
// credential but not its key can neither detach it nor take over its
// stream; a token holder cannot enrol a mesh node's key, and a credential
// for one (as such an enrolment gave before) is refused at attach, even
// with a valid proof.
func TestStolenCredentialAndMeshNodeKeys(t *testing.T) {
	h := start(t, Options{Carrier: "stream"})
	id, cred, _ := connectorKey(t, h, 0)
	thief, _ := wgkey.Generate()
	api := &enroll.Client{BaseURL: h.Meshes()[0].URL, HTTPClient: h.APIClient(), Key: thief}
	var ae *enroll.APIError
	if err := api.Detach(t.Context(), cred, false); !errors.As(err, &ae) || ae.Code != enroll.CodeProofRequired {
		t.Fatalf("detach with a stolen credential: got %v, want %s", err, enroll.CodeProofRequired)
	}
	if _, err := api.Attach(t.Context(), cred); !errors.As(err, &ae) || ae.Code != enroll.CodeProofRequired {
		t.Fatalf("attach with a stolen credential: got %v, want %s", err, enroll.CodeProofRequired)
	}
	// The stream: with the credential and the thief's own proof.
	if code := streamStatus(t, h, cred, thief); code != http.StatusForbidden {
		t.Fatalf("stream with a stolen credential: got %d, want 403", code)
	}
	if !attached(h, id) || h.Connectors()[0].C.Attached() == 0 {
		t.Fatal("the real connector lost its attachment")
	}
	if resp, _ := get(t, h.MeshClient(0), h.AppURL(0, "/hello")); resp.StatusCode != http.StatusOK {
		t.Fatalf("app after the thief's attempts: %d", resp.StatusCode)
	}
	// A mesh node's own key cannot be enrolled.
	node := h.Meshes()[0].Node.WireGuard().PublicKey()
	tok, _, _ := h.Authority.MintEnrollToken("hq", time.Hour)
	st, er := postJSON(t, h, enroll.EnrollPath, enroll.EnrollRequest{Token: tok, PublicKey: node, Name: "mesh"})
	if st != http.StatusForbidden || er.Error != enroll.CodeKeyReserved {
		t.Fatalf("enrol of the node's key: got %d %s, want 403 %s", st, er.Error, enroll.CodeKeyReserved)
	}
	// A credential for the node's key, with a proof made with the node's
	// own private key, is still refused.
	nodeKey, err := wgkey.Load(filepath.Join(h.Meshes()[0].Dir(), "wg.key"))
	if err != nil {
		t.Fatal(err)
	}
	nodeCred, _, err := h.Authority.IssueCredential("mesh-as-connector-aaaaaaaa", "hq", node, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&enroll.Client{BaseURL: h.Meshes()[0].URL, HTTPClient: h.APIClient(), Key: nodeKey}).Attach(t.Context(), nodeCred); !errors.As(err, &ae) || ae.Code != enroll.CodeKeyReserved {
		t.Fatalf("attach of the node's key with a valid proof: got %v, want %s", err, enroll.CodeKeyReserved)
	}
	// The token was not used up by the refusal.
	nk, _ := wgkey.Generate()
	if _, err := api.Enroll(t.Context(), tok, nk, "after"); err != nil {
		t.Fatalf("the token after the refusal: %v", err)
	}
}

// streamStatus opens a stream to mesh node 0 with cred and key's proof and
// returns the status of the upgrade.
func streamStatus(t testing.TB, h *Harness, cred string, key wgkey.Private) int {
	t.Helper()
	proof, err := enroll.Proof(key, h.Meshes()[0].Node.WireGuard().PublicKey(), streambind.Path, time.Now(), cred, "")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", h.Meshes()[0].URL+streambind.Path, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", streambind.Protocol)
	req.Header.Set("Authorization", "Bearer "+cred)
	req.Header.Set(streambind.ProofHeader, proof)
	tr := &http.Transport{TLSClientConfig: h.APIClient().Transport.(*http.Transport).TLSClientConfig, ForceAttemptHTTP2: false}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// postJSON posts body to path on mesh node 0 and returns the status and
// the error answer.
func postJSON(t testing.TB, h *Harness, path string, body any) (int, enroll.ErrorResponse) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := h.APIClient().Post(h.Meshes()[0].URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var er enroll.ErrorResponse
	json.NewDecoder(resp.Body).Decode(&er)
	return resp.StatusCode, er
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

// TestLoneNodeRefusesToStartWithoutUsedTokens: a lone node whose record
// of used enrolment tokens was deleted refuses to start (it has no peers
// to restore it from) rather than accept used tokens again.
func TestLoneNodeRefusesToStartWithoutUsedTokens(t *testing.T) {
	h := start(t, Options{})
	h.KillMesh(0)
	path := filepath.Join(h.Meshes()[0].Dir(), "used-tokens.json")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	err := h.StartMesh(0)
	if err == nil || !strings.Contains(err.Error(), "is missing although this node ran before") {
		t.Fatalf("start without the used tokens: got %v, want a refusal", err)
	}
	if err := os.WriteFile(path, []byte(`{"version":1,"tokens":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.StartMesh(0); err != nil {
		t.Fatalf("start after the operator restored the file: %v", err)
	}
}
