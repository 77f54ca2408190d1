package connector

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/wgkey"
)

// tokenVerifier accepts the workload tokens it lists for group "pods",
// with a 10-minute credential.
type tokenVerifier map[string]bool

func (v tokenVerifier) AllowsSubject(group, sub string) bool { return true }

func (v tokenVerifier) VerifyWorkload(_ context.Context, group, token string) (enroll.WorkloadGrant, error) {
	if group != "pods" || !v[token] {
		return enroll.WorkloadGrant{}, fmt.Errorf("test: %w", enroll.ErrWorkloadToken)
	}
	return enroll.WorkloadGrant{Subject: "system:serviceaccount:postern:connectord", Expires: time.Now().Add(time.Hour), CredentialTTL: 10 * time.Minute}, nil
}

// TestEnrollOnceWorkload: with a workload token, EnrollOnce enrols when
// the state directory holds nothing, keeps a valid credential without
// reading the token, and enrols again, with the same key and a token read
// afresh, once the stored credential expires within a minute; with a
// one-time token it never enrols twice. Forget removes the key and state.
func TestEnrollOnceWorkload(t *testing.T) {
	clock := testkit.NewClock(time.Now().Truncate(time.Second))
	key, err := authority.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	auth, err := authority.New(authority.Config{Key: key, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	used, err := authority.OpenUsedTokens(filepath.Join(t.TempDir(), "used.json"), clock.Now, false)
	if err != nil {
		t.Fatal(err)
	}
	nodeKey, err := wgkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := enroll.NewServer(enroll.Config{Authority: auth, Used: used, NodeKey: nodeKey, RateLimit: rate.Inf, Now: clock.Now,
		Workloads: tokenVerifier{"rotated-1": true, "rotated-2": true}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	reads := 0
	token := func() (string, error) {
		reads++
		return ReadToken("", tokenFile, "", nil)
	}
	cfg := EnrollConfig{StateDir: filepath.Join(dir, "state"), MeshURL: ts.URL, Group: "pods", Name: "connectord-0", HTTPClient: ts.Client(), Now: clock.Now}
	if err := os.WriteFile(tokenFile, []byte("rotated-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	first, enrolled, err := EnrollOnce(t.Context(), cfg, token)
	if err != nil || !enrolled || reads != 1 {
		t.Fatalf("first start: enrolled %v, %d reads, %v", enrolled, reads, err)
	}
	if first.Group != "pods" || first.CredentialExpires.Sub(first.CredentialIssued) > 10*time.Minute {
		t.Fatalf("state %+v, want group pods and a 10-minute credential", first)
	}
	if _, enrolled, err := EnrollOnce(t.Context(), cfg, token); err != nil || enrolled || reads != 1 {
		t.Fatalf("restart with a valid credential: enrolled %v, %d reads, %v; want neither", enrolled, reads, err)
	}
	// The kubelet rotated the token; the credential is about to expire.
	if err := os.WriteFile(tokenFile, []byte("rotated-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clock.Add(9*time.Minute + 30*time.Second)
	again, enrolled, err := EnrollOnce(t.Context(), cfg, token)
	if err != nil || !enrolled || reads != 2 {
		t.Fatalf("restart with an expiring credential: enrolled %v, %d reads, %v", enrolled, reads, err)
	}
	if again.ConnectorID != first.ConnectorID || again.Credential == first.Credential {
		t.Fatalf("re-enrolment: id %s (was %s), want the same key's id and a new credential", again.ConnectorID, first.ConnectorID)
	}
	// A one-time token is never read again, whatever the credential.
	clock.Add(time.Hour)
	oneTime := cfg
	oneTime.Group = ""
	if _, enrolled, err := EnrollOnce(t.Context(), oneTime, token); err != nil || enrolled || reads != 2 {
		t.Fatalf("one-time mode with an expired credential: enrolled %v, %d reads, %v", enrolled, reads, err)
	}

	if err := Forget(cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{keyFile, stateFile} {
		if _, err := os.Stat(filepath.Join(cfg.StateDir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after Forget: %v", f, err)
		}
	}
	if err := Forget(cfg.StateDir); err != nil {
		t.Errorf("Forget twice: %v", err)
	}
	if _, err := LoadState(cfg.StateDir); !errors.Is(err, ErrNotEnrolled) {
		t.Errorf("after Forget: %v, want ErrNotEnrolled", err)
	}
}

// TestRenewFallsBackToReenroll: a connector that cannot renew through the
// tunnel (not attached: the mesh out of reach) keeps its credential while
// five sixths of its life are left, then gets a fresh one from Reenroll
// (a workload connector's fresh ServiceAccount token) and stores it; a
// connector without Reenroll only reports the failure.
func TestRenewFallsBackToReenroll(t *testing.T) {
	m := newFakeMesh(t, 0)
	clock := testkit.NewClock(time.Now().Truncate(time.Second))
	calls := 0
	c, err := build(testConfig(t, m, State{MeshURLs: []string{m.nodes[0].url}}, func(cfg *Config) {
		cfg.Now = clock.Now
		cfg.Reenroll = func(context.Context) (string, time.Time, error) {
			calls++
			return "fresh-credential", clock.Now().Add(time.Hour), nil
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.own.Close()
	c.state.CredentialIssued, c.state.CredentialExpires = clock.Now(), clock.Now().Add(time.Hour)
	clock.Add(40 * time.Minute)
	if err := c.renew(t.Context()); err == nil || calls != 0 {
		t.Fatalf("at two thirds, not attached: got %v with %d re-enrolments, want the tunnel's error and none", err, calls)
	}
	clock.Add(11 * time.Minute)
	if err := c.renew(t.Context()); err != nil || calls != 1 {
		t.Fatalf("in the last sixth: got %v with %d re-enrolments, want one", err, calls)
	}
	saved, err := LoadState(c.cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if c.State().Credential != "fresh-credential" || saved.Credential != "fresh-credential" || !saved.CredentialExpires.Equal(clock.Now().Add(time.Hour)) {
		t.Fatalf("state %+v (saved %+v), want the fresh credential", c.State(), saved)
	}
	c.cfg.Reenroll = nil
	clock.Add(2 * time.Hour)
	if err := c.renew(t.Context()); err == nil {
		t.Fatal("without Reenroll, not attached: got nil")
	}
}
