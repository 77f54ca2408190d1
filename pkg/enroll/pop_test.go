package enroll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/revoke"
	"github.com/postern/postern/pkg/wgkey"
)

func TestSealedCredential(t *testing.T) {
	e := newEnv(t, nil)
	victim := newKey(t)
	// A token holder who names another key (a mesh node's, a live
	// connector's) gets a credential sealed to that key: nothing it can
	// open, and no plaintext credential in the answer.
	body, _ := json.Marshal(EnrollRequest{Token: e.mint(t), PublicKey: victim.Public(), Name: "thief"})
	resp, err := http.Post(e.ts.URL+EnrollPath, "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw map[string]any
	json.NewDecoder(resp.Body).Decode(&raw)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if _, ok := raw["credential"]; ok {
		t.Fatal("the answer carries a plaintext credential")
	}
	sealed, _ := raw["sealed_credential"].(string)
	if _, err := OpenCredential(sealed, newKey(t)); !errors.Is(err, ErrProof) {
		t.Fatalf("another key opened the sealed credential: %v", err)
	}
	cred, err := OpenCredential(sealed, victim)
	if err != nil {
		t.Fatalf("the named key cannot open it: %v", err)
	}
	if c, err := e.auth.VerifyCredential(cred); err != nil || c.PublicKey != victim.Public() {
		t.Fatalf("opened credential: %+v, %v", c, err)
	}
	for _, bad := range []string{"", "!!", sealed[:len(sealed)-4]} {
		if _, err := OpenCredential(bad, victim); err == nil {
			t.Errorf("opened %q", bad)
		}
	}
}

func TestProofOfPossession(t *testing.T) {
	e := newEnv(t, nil)
	key := newKey(t)
	cred := issued(key.Public())(e)
	thief := newKey(t)
	otherNode := newPub(t)
	attach := func(proof string) (int, ErrorResponse) {
		st, er, _ := post(t, e.ts.URL+AttachPath, AttachRequest{Credential: cred, Proof: proof})
		return st, er
	}
	detach := func(drain bool, proof string) (int, ErrorResponse) {
		st, er, _ := post(t, e.ts.URL+DetachPath, DetachRequest{Credential: cred, Drain: drain, Proof: proof})
		return st, er
	}
	mk := func(k wgkey.Private, node wgkey.Public, path string, at time.Time, c, extra string) string {
		p, err := Proof(k, node, path, at, c, extra)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	node := e.nodeKey.Public()
	now := e.clock.Now()
	otherCred := issued(newPub(t))(e)
	tests := []struct {
		name string
		do   func() (int, ErrorResponse)
	}{
		{"attach without proof (a stolen credential)", func() (int, ErrorResponse) { return attach("") }},
		{"attach with the thief's own key", func() (int, ErrorResponse) { return attach(mk(thief, node, AttachPath, now, cred, "")) }},
		{"attach with a proof for another node", func() (int, ErrorResponse) { return attach(mk(key, otherNode, AttachPath, now, cred, "")) }},
		{"attach with a detach proof", func() (int, ErrorResponse) { return attach(mk(key, node, DetachPath, now, cred, "")) }},
		{"attach with a proof for another credential", func() (int, ErrorResponse) { return attach(mk(key, node, AttachPath, now, otherCred, "")) }},
		{"attach with a stale proof", func() (int, ErrorResponse) {
			return attach(mk(key, node, AttachPath, now.Add(-ProofSkew-time.Second), cred, ""))
		}},
		{"attach with a future proof", func() (int, ErrorResponse) {
			return attach(mk(key, node, AttachPath, now.Add(ProofSkew+time.Second), cred, ""))
		}},
		{"attach with a garbage proof", func() (int, ErrorResponse) { return attach("123.!!!") }},
		{"attach with a huge proof", func() (int, ErrorResponse) { return attach(strings.Repeat("1", 200) + ".x") }},
		{"detach without proof", func() (int, ErrorResponse) { return detach(false, "") }},
		{"detach with the thief's key", func() (int, ErrorResponse) {
			return detach(false, mk(thief, node, DetachPath, now, cred, "drain=false"))
		}},
		{"detach with a drain proof used to remove", func() (int, ErrorResponse) {
			return detach(false, mk(key, node, DetachPath, now, cred, "drain=true"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, er := tt.do()
			if st != http.StatusUnauthorized || er.Error != CodeProofRequired || er.NodeKey == nil || *er.NodeKey != node {
				t.Fatalf("got %d %s (node key %v), want 401 %s with this node's key", st, er.Error, er.NodeKey, CodeProofRequired)
			}
		})
	}
	if len(e.attacher.got) != 0 || len(e.attacher.detached) != 0 {
		t.Fatalf("the attacher was called: %v %v", e.attacher.got, e.attacher.detached)
	}
	// The holder of the key gets through, learning the node key from the
	// refusal on its first call.
	cl := e.clientFor(key)
	if _, err := cl.Attach(t.Context(), cred); err != nil {
		t.Fatal(err)
	}
	if cl.NodeKey != node {
		t.Errorf("client did not learn the node key")
	}
	if err := cl.Detach(t.Context(), cred, false); err != nil {
		t.Fatal(err)
	}
	// A client with the wrong key gives up after one retry.
	bad := e.clientFor(thief)
	var ae *APIError
	if _, err := bad.Attach(t.Context(), cred); !errors.As(err, &ae) || ae.Code != CodeProofRequired {
		t.Fatalf("thief's client: got %v", err)
	}
}

// fakeChecks answers the mesh's checks from fields.
type fakeChecks struct {
	nodeKey   wgkey.Public
	revokedID string
	group     string
}

func (f fakeChecks) IsNodeKey(p wgkey.Public) bool { return p == f.nodeKey }
func (f fakeChecks) ConnectorRevoked(id string, p wgkey.Public) bool {
	return id == f.revokedID || revoke.KeyPrefix+p.String() == f.revokedID
}
func (f fakeChecks) GroupExists(g string) bool { return g == f.group }

func TestMeshChecks(t *testing.T) {
	meshNode := newKey(t)
	revoked := newKey(t)
	revokedID := authority.ConnectorID("x", revoked.Public())
	e := newEnv(t, func(c *Config) {
		c.Checks = fakeChecks{nodeKey: meshNode.Public(), revokedID: revokedID, group: "branch"}
	})
	tok := e.mint(t)
	enrol := func(k wgkey.Public, tok string) (int, string) {
		st, er, _ := post(t, e.ts.URL+EnrollPath, EnrollRequest{Token: tok, PublicKey: k, Name: "x"})
		return st, er.Error
	}
	if st, code := enrol(meshNode.Public(), tok); st != http.StatusForbidden || code != CodeKeyReserved {
		t.Errorf("enrol with a mesh node's key: got %d %s", st, code)
	}
	if st, code := enrol(e.nodeKey.Public(), tok); st != http.StatusForbidden || code != CodeKeyReserved {
		t.Errorf("enrol with this node's own key: got %d %s", st, code)
	}
	if st, code := enrol(revoked.Public(), tok); st != http.StatusForbidden || code != CodeConnectorRevoked {
		t.Errorf("enrol of a revoked connector: got %d %s", st, code)
	}
	other, _, _ := e.auth.MintEnrollToken("gone", time.Hour)
	if st, code := enrol(newPub(t), other); st != http.StatusForbidden || code != CodeGroupUnknown {
		t.Errorf("enrol into a group not in the catalogue: got %d %s", st, code)
	}
	// None of these burnt the token.
	if _, err := e.clientFor(newKey(t)).Enroll(t.Context(), tok, newKey(t), "ok"); err != nil {
		t.Fatalf("the token after refusals: %v", err)
	}
	// Attach, nodes and renew refuse the revoked connector and the mesh
	// node's key.
	revCred, _, _ := e.auth.IssueCredential(revokedID, "branch", revoked.Public(), time.Hour)
	var ae *APIError
	if _, err := e.clientFor(revoked).Attach(t.Context(), revCred); !errors.As(err, &ae) || ae.Code != CodeConnectorRevoked {
		t.Errorf("attach of a revoked connector: got %v", err)
	}
	if _, err := e.client.Nodes(t.Context(), revCred); !errors.As(err, &ae) || ae.Code != CodeConnectorRevoked {
		t.Errorf("nodes of a revoked connector: got %v", err)
	}
	e.fromTunnel(revoked.Public())
	if _, err := e.client.Renew(t.Context(), revCred); !errors.As(err, &ae) || ae.Code != CodeConnectorRevoked {
		t.Errorf("renew of a revoked connector: got %v", err)
	}
	meshCred, _, _ := e.auth.IssueCredential("m-1", "branch", meshNode.Public(), time.Hour)
	if _, err := e.clientFor(meshNode).Attach(t.Context(), meshCred); !errors.As(err, &ae) || ae.Code != CodeKeyReserved {
		t.Errorf("attach with a mesh node's key: got %v", err)
	}
	gone := newKey(t)
	goneCred, _, _ := e.auth.IssueCredential("g-1", "gone", gone.Public(), time.Hour)
	e.fromTunnel(gone.Public())
	if _, err := e.client.Renew(t.Context(), goneCred); !errors.As(err, &ae) || ae.Code != CodeGroupUnknown {
		t.Errorf("renew in a removed group: got %v", err)
	}
	if len(e.attacher.got) != 0 {
		t.Errorf("the attacher was called for a refused connector: %v", e.attacher.got)
	}
}

// fakeRedeemer answers every redemption the same way.
type fakeRedeemer struct {
	first bool
	err   error
}

func (f fakeRedeemer) Redeem(context.Context, authority.TokenInfo, wgkey.Public) (bool, error) {
	return f.first, f.err
}

func TestRedeemer(t *testing.T) {
	for _, tt := range []struct {
		name   string
		r      fakeRedeemer
		status int
		code   string
	}{
		{"partition", fakeRedeemer{err: fmt.Errorf("no majority: %w", ErrRedeemUnavailable)}, http.StatusServiceUnavailable, CodeTokenCheckUnavailable},
		{"lost record", fakeRedeemer{err: authority.ErrUsedUnrestored}, http.StatusServiceUnavailable, CodeTokenCheckUnavailable},
		{"used elsewhere", fakeRedeemer{first: false}, http.StatusConflict, CodeTokenAlreadyUsed},
		{"other failure", fakeRedeemer{err: errors.New("disk full")}, http.StatusInternalServerError, CodeInternal},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Redeemer = tt.r })
			st, er, h := post(t, e.ts.URL+EnrollPath, EnrollRequest{Token: e.mint(t), PublicKey: newPub(t)})
			if st != tt.status || er.Error != tt.code {
				t.Fatalf("got %d %s, want %d %s", st, er.Error, tt.status, tt.code)
			}
			if tt.status == http.StatusServiceUnavailable && h.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

// fakeRevoker accepts proofs that verify with the authority.
type fakeRevoker struct{ a *authority.Authority }

func (f fakeRevoker) Revoke(_ context.Context, proof string) (revoke.Entry, error) {
	e, err := f.a.VerifyRevocation(proof)
	if err != nil {
		return revoke.Entry{}, fmt.Errorf("%w: %w", ErrBadRevocation, err)
	}
	return e, nil
}

func TestRevokeEndpoint(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Revoker = fakeRevoker{c.Authority} })
	proof, err := e.auth.SignRevocation(revoke.User("tid/alice", t0, t0, 0))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.client.Revoke(t.Context(), proof)
	if err != nil || resp.Kind != "user" || resp.Subject != "tid/alice" || !resp.Before.Equal(t0) {
		t.Fatalf("got %+v, %v", resp, err)
	}
	var ae *APIError
	if _, err := e.client.Revoke(t.Context(), e.mint(t)); !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != CodeRevocationInvalid {
		t.Errorf("a token as revocation: got %v", err)
	}
	none := newEnv(t, nil)
	if _, err := none.client.Revoke(t.Context(), proof); !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
		t.Errorf("no revoker: got %v", err)
	}
}
