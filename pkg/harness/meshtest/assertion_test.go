package meshtest

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/postern/postern/pkg/appreq"
	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/edge"
	"github.com/postern/postern/pkg/gossip"
	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/meshnode"
	"github.com/postern/postern/pkg/nodecred"
	"github.com/postern/postern/pkg/nodekeys"
	"github.com/postern/postern/pkg/simnet"
	"github.com/postern/postern/pkg/wgkey"
)

// TestBackendVerifiesEveryNodesAssertionWithOneJWKS: a backend behind
// three mesh nodes, configured as a real one is (go-oidc's remote key set)
// with ONE JWKS URL, served by node a, and the mesh's issuer, verifies the
// X-Postern-Assertion minted by each of a, b and c, each signed with that
// node's own authority-certified node key. A keyring holder with a
// credential of another authority gets no key into the set; a departed
// node's key stays, so its last assertions still verify.
func TestBackendVerifiesEveryNodesAssertionWithOneJWKS(t *testing.T) {
	sim := simnet.NewNetwork(simnet.DefaultMatrix(), 1)
	top := &harness.Topology{Net: sim, AttachK: 1,
		Nodes: []harness.NodeSpec{{ID: "a", Region: "us-east-1"}, {ID: "b", Region: "eu-west-1"},
			{ID: "c", Region: "ap-southeast-1"}},
		Connectors: []harness.ConnectorSpec{{Group: "hq", Region: "us-east-1"}}}
	logs := &harness.SyncBuffer{}
	h, err := harness.Start(t.Context(), harness.Options{Topology: top, Auth: true, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	waitTunnels(t, h)
	token, err := h.ClientCredentials(t.Context(), harness.DaemonClientID, harness.DaemonSecret, harness.APIIdentifier+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	a := h.MeshIndex("a")
	backend := func() *oidc.IDTokenVerifier {
		// A fresh key set each time: nothing cached from an earlier fetch.
		ctx := oidc.ClientContext(t.Context(), h.MeshClient(a))
		keys := oidc.NewRemoteKeySet(ctx, h.APIURL(a, edge.JWKSPath))
		return oidc.NewVerifier(nodekeys.Issuer(harness.GossipLabel), keys,
			&oidc.Config{ClientID: harness.APIAppHost, SupportedSigningAlgs: []string{oidc.EdDSA}})
	}
	v := backend()
	minted := map[string]string{}
	for _, id := range []string{"a", "b", "c"} {
		i := h.MeshIndex(id)
		jwt := assertionVia(t, h, i, token)
		if got, want := kidOf(t, jwt), nodecred.KeyID(nodeCredential(t, h, i).NodeKey); got != want {
			t.Fatalf("assertion via %s: kid %s, want %s's node key %s", id, got, id, want)
		}
		tok, err := v.Verify(t.Context(), jwt)
		if err != nil {
			t.Fatalf("backend verifying the assertion minted by %s with a's JWKS: %v", id, err)
		}
		var claims struct {
			Type string `json:"ptype"`
		}
		if err := tok.Claims(&claims); err != nil || claims.Type != "app" || tok.Subject == "" {
			t.Errorf("assertion via %s: subject %q, type %q (%v), want the daemon app", id, tok.Subject, claims.Type, err)
		}
		minted[id] = jwt
	}
	// The same token for another app does not verify: the audience is
	// the app's host.
	wrongApp := oidc.NewVerifier(nodekeys.Issuer(harness.GossipLabel), oidc.NewRemoteKeySet(oidc.ClientContext(t.Context(), h.MeshClient(a)),
		h.APIURL(a, edge.JWKSPath)), &oidc.Config{ClientID: harness.OpenAppHost, SupportedSigningAlgs: []string{oidc.EdDSA}})
	if _, err := wrongApp.Verify(t.Context(), minted["b"]); err == nil {
		t.Error("the assertion for the API verified for another app")
	}
	// Nor under another mesh's issuer.
	otherMesh := oidc.NewVerifier(nodekeys.Issuer("another-mesh"), oidc.NewRemoteKeySet(oidc.ClientContext(t.Context(), h.MeshClient(a)),
		h.APIURL(a, edge.JWKSPath)), &oidc.Config{ClientID: harness.APIAppHost, SupportedSigningAlgs: []string{oidc.EdDSA}})
	if _, err := otherMesh.Verify(t.Context(), minted["b"]); err == nil {
		t.Error("the assertion verified under another mesh's issuer")
	}

	// The app request that b signs with the same node key for the auth
	// functions, which any browser sees in its sign-in redirect, is no
	// assertion: another typ, no iss, the auth URL as audience.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, h.AppURL(h.MeshIndex("b"), "/"), nil)
	req.Header.Set("Accept", "text/html") // a browser: sent to sign in
	resp, err := h.MeshClient(h.MeshIndex("b")).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get(appreq.Param) == "" {
		t.Fatalf("sign-in redirect %q carries no app request (%v)", resp.Header.Get("Location"), err)
	}
	if kidOf(t, minted["b"]) == "" {
		t.Fatal("b's assertion names no kid")
	}
	if _, err := v.Verify(t.Context(), loc.Query().Get(appreq.Param)); err == nil {
		t.Error("b's signed app request verified as an assertion")
	}

	// A keyring holder whose credential another authority signed tries
	// to join through a: it is refused, and its key is never served.
	rogueKid := joinRogue(t, h, h.Meshes()[a].GossipAddr())
	if err := harness.WaitFor(t.Context(), harness.Patience, func() bool {
		return strings.Contains(logs.String(), "ignoring alive message for 'rogue'")
	}); err != nil {
		t.Fatalf("node a never refused the rogue node: %v", err)
	}
	// Every node serves the three nodes' keys (each sets them at its
	// next sync), and never the rogue's.
	if err := harness.WaitFor(t.Context(), harness.Patience, func() bool {
		for _, i := range h.Running() {
			if len(jwksKids(t, h, i)) != 3 {
				return false
			}
		}
		return true
	}); err != nil {
		t.Errorf("not every node serves the three nodes' keys: %v", err)
	}
	for _, i := range h.Running() {
		if slices.Contains(jwksKids(t, h, i), rogueKid) {
			t.Fatalf("node %s serves the rogue node's key", h.Meshes()[i].ID)
		}
	}

	// c departs: a no longer sees it, yet still serves its key, so the
	// assertion c minted before it left still verifies.
	c := h.MeshIndex("c")
	h.StopMesh(c)
	if err := harness.WaitFor(t.Context(), harness.Patience, func() bool {
		for _, n := range h.Meshes()[a].Node.Status().Mesh.Nodes {
			if n.ID == "c" {
				return n.State != string(gossip.StateAlive)
			}
		}
		return true
	}); err != nil {
		t.Fatalf("a still sees c alive: %v", err)
	}
	if _, err := backend().Verify(t.Context(), minted["c"]); err != nil {
		t.Errorf("c's assertion after c left: %v", err)
	}
	// a's key set marks c departed at its next sync, and keeps its key.
	var st meshnode.Status
	if err := harness.WaitFor(t.Context(), harness.Patience, func() bool {
		st = h.Meshes()[a].Node.Status()
		for _, k := range st.AssertionKeys {
			if k.Node == "c" {
				return !k.Present
			}
		}
		return false
	}); err != nil || len(st.AssertionKeys) != 3 || st.AssertionIssuer != nodekeys.Issuer(harness.GossipLabel) {
		t.Errorf("a's status: issuer %q, keys %+v (%v); want three keys, c's kept as departed", st.AssertionIssuer, st.AssertionKeys, err)
	}
	if _, err := backend().Verify(t.Context(), minted["c"]); err != nil {
		t.Errorf("c's assertion after a marked c departed: %v", err)
	}
}

// assertionVia calls the records API through mesh node i with token and
// returns the X-Postern-Assertion its backend received; it waits for the
// route to the connector, which may need the gossip.
func assertionVia(t testing.TB, h *harness.Harness, i int, token string) string {
	t.Helper()
	var jwt, last string
	err := harness.WaitFor(t.Context(), harness.Patience, func() bool {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, h.APIURL(i, "/headers"), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := h.MeshClient(i).Do(req)
		if err != nil {
			last = err.Error()
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			last = resp.Status
			return false
		}
		var reply struct {
			Headers http.Header `json:"headers"`
		}
		if err := json.Unmarshal(body, &reply); err != nil {
			last = err.Error()
			return false
		}
		jwt = reply.Headers.Get("X-Postern-Assertion")
		return jwt != ""
	})
	if err != nil {
		t.Fatalf("no assertion through node %d (last: %s): %v", i, last, err)
	}
	return jwt
}

// kidOf returns the kid of a compact JWS.
func kidOf(t testing.TB, jwt string) string {
	t.Helper()
	jws, err := jose.ParseSignedCompact(jwt, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil || len(jws.Signatures) != 1 {
		t.Fatalf("assertion %q: %v", jwt, err)
	}
	return jws.Signatures[0].Header.KeyID
}

// nodeCredential reads mesh node i's node credential from its state.
func nodeCredential(t testing.TB, h *harness.Harness, i int) authority.NodeCredential {
	t.Helper()
	c, err := h.Authority.LoadNodeCredential(meshnode.NodeCredentialPath(h.Meshes()[i].Dir()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// jwksKids returns the kids of mesh node i's assertion JWKS.
func jwksKids(t testing.TB, h *harness.Harness, i int) []string {
	t.Helper()
	resp, err := h.MeshClient(i).Get(h.APIURL(i, edge.JWKSPath))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("JWKS of node %d: %s, %v", i, resp.Status, err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

// joinRogue starts a gossip member "rogue" holding the mesh's keyring but
// a credential of another authority, joins it through seed, and returns
// the kid of its node key.
func joinRogue(t testing.TB, h *harness.Harness, seed string) string {
	t.Helper()
	ak, err := authority.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	rogueAuth, err := authority.New(authority.Config{Key: ak})
	if err != nil {
		t.Fatal(err)
	}
	wg, err := wgkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	nk, err := authority.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cred, err := rogueAuth.IssueNodeCredential("rogue", "us-east-1", wg.Public(), nk.Public(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := gossip.New(gossip.Config{Meta: gossip.Meta{ID: "rogue", Region: "us-east-1", WGKey: wg.Public(), Boot: 1},
		Identity: gossip.Identity{Credential: cred, Key: nk}, Verifier: rogueAuth, BindAddr: "127.0.0.1:0",
		Keys: [][]byte{h.GossipKey()}, Label: harness.GossipLabel, Seeds: []string{seed}, Timing: gossip.LocalTiming(),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Join(t.Context()) // refused: a's answer is refused by the rogue too
	return nodecred.KeyID(nk.Public())
}
