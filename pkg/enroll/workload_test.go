package enroll

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/revoke"
)

// tableVerifier is a WorkloadVerifier over a fixed table of tokens, for
// the server's side of workload enrolment: how it maps the verifier's
// answers. The verification itself (pkg/bearer against a real issuer) is
// tested end to end in pkg/harness.
type tableVerifier struct {
	tokens   map[string]verdict
	disallow atomic.Bool // AllowsSubject says no
}

type verdict struct {
	grant WorkloadGrant
	err   error
}

func (v *tableVerifier) AllowsSubject(group, sub string) bool { return !v.disallow.Load() }

func (v *tableVerifier) VerifyWorkload(_ context.Context, group, token string) (WorkloadGrant, error) {
	r, ok := v.tokens[group+"/"+token]
	if !ok {
		return WorkloadGrant{}, fmt.Errorf("test: %w: issuer not trusted", ErrWorkloadToken)
	}
	return r.grant, r.err
}

// recordingRevoker verifies and records revocations as a mesh node does.
type recordingRevoker struct {
	auth *authority.Authority
	mu   sync.Mutex
	got  []revoke.Entry
}

func (r *recordingRevoker) Revoke(_ context.Context, proof string) (revoke.Entry, error) {
	e, err := r.auth.VerifyRevocation(proof)
	if err != nil {
		return revoke.Entry{}, fmt.Errorf("%w: %w", ErrBadRevocation, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, e)
	return e, nil
}

func TestEnrollWorkload(t *testing.T) {
	v := &tableVerifier{tokens: map[string]verdict{
		"k8s/good":     {grant: WorkloadGrant{Subject: "system:serviceaccount:postern:connectord", Expires: t0.Add(10 * time.Minute), CredentialTTL: time.Hour}},
		"k8s/year":     {grant: WorkloadGrant{Subject: "system:serviceaccount:postern:connectord", Expires: t0.Add(365 * 24 * time.Hour), CredentialTTL: time.Hour}},
		"k8s/other":    {err: fmt.Errorf("test: %w: subject not listed", ErrWorkloadNotAllowed)},
		"k8s/expired":  {err: fmt.Errorf("test: %w: token expired", ErrWorkloadToken)},
		"k8s/nokeys":   {err: fmt.Errorf("test: %w: keys unavailable", ErrWorkloadUnavailable)},
		"k8s/zero-ttl": {grant: WorkloadGrant{Subject: "s", Expires: t0.Add(time.Minute)}},
	}}
	e := newEnv(t, func(c *Config) { c.Workloads = v })
	ctx := t.Context()
	key := newKey(t)
	e.client = e.clientFor(key)

	enr, err := e.client.EnrollWorkload(ctx, "good", "k8s", key, "connectord-7d9f-abcde")
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(time.Hour); enr.Group != "k8s" || !enr.Expires.Equal(want) {
		t.Fatalf("got group %s, expires %v; want k8s, %v (the grant's ttl, not the 30-day default)", enr.Group, enr.Expires, want)
	}
	cred, err := e.auth.VerifyCredential(enr.Credential)
	if err != nil || cred.Group != "k8s" || cred.PublicKey != key.Public() {
		t.Fatalf("credential %+v, %v", cred, err)
	}
	if !strings.Contains(e.logs.String(), `"workload_subject":"system:serviceaccount:postern:connectord"`) {
		t.Errorf("the enrolment's log line does not name the workload subject:\n%s", e.logs.String())
	}
	// The same token again (a pod that restarted within the token's life)
	// enrols a second key: a workload token is not single-use.
	if _, err := e.client.EnrollWorkload(ctx, "good", "k8s", newKey(t), "second"); err != nil {
		t.Fatalf("second enrolment with the same token: %v", err)
	}

	// A renewal keeps the credential short: it never lengthens the life.
	e.clock.Set(t0.Add(40 * time.Minute))
	e.fromTunnel(key.Public())
	ren, err := e.client.Renew(ctx, enr.Credential)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(40*time.Minute + time.Hour); !ren.Expires.Equal(want) {
		t.Fatalf("renewed until %v, want %v (one hour from the renewal)", ren.Expires, want)
	}
	if fresh, err := e.auth.VerifyCredential(ren.Credential); err != nil || fresh.WorkloadSubject != "system:serviceaccount:postern:connectord" {
		t.Fatalf("renewed credential %+v, %v: want the workload subject kept", fresh, err)
	}
	// The group stops accepting the subject: no more renewals nor
	// attaches; a one-time token's connector of the group is not affected.
	v.disallow.Store(true)
	var ae *APIError
	if _, err := e.client.Renew(ctx, ren.Credential); !errors.As(err, &ae) || ae.Code != CodeWorkloadNotAllowed {
		t.Fatalf("renew after the subject was removed: got %v, want %s", err, CodeWorkloadNotAllowed)
	}
	e.remote.Store(nil)
	if _, err := e.client.Attach(ctx, ren.Credential); !errors.As(err, &ae) || ae.Code != CodeWorkloadNotAllowed {
		t.Fatalf("attach after the subject was removed: got %v, want %s", err, CodeWorkloadNotAllowed)
	}
	otherKey := newKey(t)
	one, err := e.clientFor(otherKey).Enroll(ctx, e.mint(t), otherKey, "vm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.clientFor(otherKey).Attach(ctx, one.Credential); err != nil {
		t.Fatalf("a one-time token's connector: %v", err)
	}
	v.disallow.Store(false)

	pub := key.Public().String()
	tests := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"token and workload token", map[string]string{"token": e.mint(t), "workload_token": "good", "group": "k8s", "public_key": pub}, http.StatusBadRequest, CodeBadRequest},
		{"one-time token naming a group", map[string]string{"token": e.mint(t), "group": "k8s", "public_key": pub}, http.StatusBadRequest, CodeBadRequest},
		{"neither", map[string]string{"public_key": pub}, http.StatusBadRequest, CodeBadRequest},
		{"no group", map[string]string{"workload_token": "good", "public_key": pub}, http.StatusBadRequest, CodeBadRequest},
		{"bad group", map[string]string{"workload_token": "good", "group": "K8S!", "public_key": pub}, http.StatusBadRequest, CodeBadRequest},
		{"token for another group", map[string]string{"workload_token": "good", "group": "hq", "public_key": pub}, http.StatusUnauthorized, CodeWorkloadTokenInvalid},
		{"subject not allowed", map[string]string{"workload_token": "other", "group": "k8s", "public_key": pub}, http.StatusForbidden, CodeWorkloadNotAllowed},
		{"expired", map[string]string{"workload_token": "expired", "group": "k8s", "public_key": pub}, http.StatusUnauthorized, CodeWorkloadTokenInvalid},
		{"valid for a year", map[string]string{"workload_token": "year", "group": "k8s", "public_key": pub}, http.StatusUnauthorized, CodeWorkloadTokenInvalid},
		{"keys unavailable", map[string]string{"workload_token": "nokeys", "group": "k8s", "public_key": pub}, http.StatusServiceUnavailable, CodeWorkloadUnavailable},
		{"no lifetime", map[string]string{"workload_token": "zero-ttl", "group": "k8s", "public_key": pub}, http.StatusInternalServerError, CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, er, _ := post(t, e.ts.URL+EnrollPath, tt.body)
			if status != tt.status || er.Error != tt.code {
				t.Fatalf("got %d %s (%s), want %d %s", status, er.Error, er.Message, tt.status, tt.code)
			}
		})
	}

	// A node without a verifier refuses every workload token.
	plain := newEnv(t, nil)
	_, err = plain.clientFor(key).EnrollWorkload(ctx, "good", "k8s", key, "x")
	if !errors.As(err, &ae) || ae.Code != CodeWorkloadNotAllowed {
		t.Fatalf("node without workload enrolment: got %v, want %s", err, CodeWorkloadNotAllowed)
	}
}

func TestLeave(t *testing.T) {
	var rev *recordingRevoker
	e := newEnv(t, func(c *Config) {
		rev = &recordingRevoker{auth: c.Authority}
		c.Revoker = rev
	})
	ctx := t.Context()
	key := newKey(t)
	enr, err := e.clientFor(key).Enroll(ctx, e.mint(t), key, "pod")
	if err != nil {
		t.Fatal(err)
	}
	// Without the key: a stolen credential cannot end (or, worse, probe)
	// the connector.
	thief := e.clientFor(newKey(t))
	thief.NodeKey = e.nodeKey.Public()
	var ae *APIError
	if err := thief.Leave(ctx, enr.Credential); !errors.As(err, &ae) || ae.Code != CodeProofRequired {
		t.Fatalf("leave with another key's proof: got %v, want %s", err, CodeProofRequired)
	}
	if status, er, _ := post(t, e.ts.URL+LeavePath, LeaveRequest{Credential: enr.Credential}); status != http.StatusUnauthorized || er.Error != CodeProofRequired {
		t.Fatalf("leave without proof: got %d %s", status, er.Error)
	}
	if status, er, _ := post(t, e.ts.URL+LeavePath, LeaveRequest{Credential: "x.y.z", Proof: "1.x"}); status/100 != 4 || !strings.HasPrefix(er.Error, "credential_") {
		t.Fatalf("leave with a forged credential: got %d %s", status, er.Error)
	}
	if len(rev.got) != 0 {
		t.Fatalf("refused leaves revoked %+v", rev.got)
	}
	c := e.clientFor(key)
	if err := c.Leave(ctx, enr.Credential); err != nil {
		t.Fatal(err)
	}
	if err := c.Leave(ctx, enr.Credential); err != nil {
		t.Fatalf("leaving twice: %v", err)
	}
	if len(rev.got) != 2 {
		t.Fatalf("revocations: got %d, want 2", len(rev.got))
	}
	got := rev.got[0]
	// The entry outlives the credential (it cannot be renewed once
	// revoked) but by little: it ends the connector, nothing more.
	wantUntil := enr.Expires.Add(e.auth.Skew() + time.Minute).Unix()
	if got.Kind != revoke.KindConnector || got.Subject != enr.ConnectorID || got.Until != wantUntil {
		t.Fatalf("revocation %+v, want connector %s until %d", got, enr.ConnectorID, wantUntil)
	}
	// A node that records no revocations says so.
	plain := newEnv(t, nil)
	key2 := newKey(t)
	enr2, err := plain.clientFor(key2).Enroll(ctx, plain.mint(t), key2, "pod")
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.clientFor(key2).Leave(ctx, enr2.Credential); !errors.As(err, &ae) || ae.Code != CodeRevokeUnavailable {
		t.Fatalf("leave at a node without a revoker: got %v, want %s", err, CodeRevokeUnavailable)
	}
}
