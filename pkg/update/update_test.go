package update

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The test binary plays the connector: with UPDATE_TEST_DIR set it runs
// Launch as the installed binary does at start, execs what Launch says,
// and as a trial version commits, unless UPDATE_TEST_BROKEN names it (a
// broken release that exits at once).
func TestMain(m *testing.M) {
	if os.Getenv(EnvSupervised) == "1" {
		os.Exit(supervisedChild())
	}
	if dir := os.Getenv("UPDATE_TEST_DIR"); dir != "" {
		os.Exit(play(dir))
	}
	os.Exit(m.Run())
}

func play(dir string) int {
	d, err := Launch(dir, os.Environ())
	if err != nil {
		fmt.Println("launch:", err)
		return 2
	}
	if d.RolledBack != "" {
		fmt.Println("rolled back", d.RolledBack)
	}
	if d.Exec != "" {
		if err := syscall.Exec(d.Exec, []string{d.Exec}, d.Env); err != nil {
			fmt.Println("exec:", err)
			return 2
		}
	}
	trial := os.Getenv(EnvTrial)
	switch {
	case trial != "" && trial == os.Getenv("UPDATE_TEST_BROKEN"):
		fmt.Println("broken", trial)
		return 1
	case trial != "":
		if err := Commit(dir, trial); err != nil {
			fmt.Println("commit:", err)
			return 2
		}
		fmt.Println("committed", trial)
	case os.Getenv(EnvLaunched) == "1":
		fmt.Println("running staged", filepath.Base(os.Args[0]))
	default:
		fmt.Println("running installed")
	}
	return 0
}

// start runs the installed binary (this test binary) once, as a service
// manager starts it, and returns its output.
func start(t *testing.T, dir string, env ...string) (string, error) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), append([]string{"UPDATE_TEST_DIR=" + dir}, env...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// release is a local release server with a signed manifest of version v,
// whose linux binary is this test binary with extra bytes (another file,
// which still runs).
type release struct {
	srv      *httptest.Server
	key      ed25519.PrivateKey
	binary   []byte
	manifest []byte
}

func newRelease(t *testing.T, v string, key ed25519.PrivateKey, tamper bool) *release {
	t.Helper()
	self, _ := os.Executable()
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin = append(bin, []byte("\x00release "+v)...)
	r := &release{key: key, binary: bin}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/release.json":
			w.Write(r.manifest)
		case "/connectord":
			b := r.binary
			if tamper {
				b = append(bytes.Clone(b[:len(b)-1]), 'X')
			}
			w.Write(b)
		default:
			http.NotFound(w, req)
		}
	}))
	t.Cleanup(r.srv.Close)
	sum := sha256.Sum256(bin)
	m := Manifest{Product: "connectord", Version: v, Artifacts: map[string]Artifact{
		"linux/amd64": {URL: r.srv.URL + "/connectord", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(bin))}}}
	if r.manifest, err = Sign(m, key); err != nil {
		t.Fatal(err)
	}
	return r
}

func newKey(t *testing.T) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func updater(t *testing.T, r *release, pinned ed25519.PrivateKey, current, dir string) *Updater {
	t.Helper()
	u, err := New(Config{ManifestURL: r.srv.URL + "/release.json", Keys: []ed25519.PublicKey{pinned.Public().(ed25519.PublicKey)},
		Product: "connectord", Current: current, Platform: "linux/amd64", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestUpdateAndCommit: 1.0.0 finds 1.1.0 signed by the pinned key,
// stages it, runs it on trial at the next start; it commits, and every
// later start runs it.
func TestUpdateAndCommit(t *testing.T) {
	key := newKey(t)
	r := newRelease(t, "1.1.0", key, false)
	dir := t.TempDir()
	u := updater(t, r, key, "1.0.0", dir)
	m, err := u.Check(t.Context())
	if err != nil || m == nil || m.Version != "1.1.0" {
		t.Fatalf("check: %v, %v", m, err)
	}
	if err := u.Stage(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	if out, err := start(t, dir); err != nil || out != "committed 1.1.0" {
		t.Fatalf("first start after staging: %q, %v", out, err)
	}
	if out, err := start(t, dir); err != nil || out != "running staged connectord-1.1.0" {
		t.Fatalf("next start: %q, %v", out, err)
	}
	// The same release is not offered to 1.1.0, nor an older one.
	if m, err := updater(t, r, key, "1.1.0", dir).Check(t.Context()); err != nil || m != nil {
		t.Errorf("1.1.0 offered to 1.1.0: %v, %v", m, err)
	}
	if m, err := updater(t, newRelease(t, "0.9.0", key, false), key, "1.1.0", dir).Check(t.Context()); err != nil || m != nil {
		t.Errorf("downgrade offered: %v, %v", m, err)
	}
}

// TestBrokenReleaseRolledBack: a release that fails at start is run once;
// the next start goes back to the installed binary, marks the release bad
// and never offers it again.
func TestBrokenReleaseRolledBack(t *testing.T) {
	key := newKey(t)
	r := newRelease(t, "1.1.0", key, false)
	dir := t.TempDir()
	u := updater(t, r, key, "1.0.0", dir)
	m, err := u.Check(t.Context())
	if err != nil || m == nil {
		t.Fatalf("check: %v, %v", m, err)
	}
	if err := u.Stage(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	out, err := start(t, dir, "UPDATE_TEST_BROKEN=1.1.0")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || out != "broken 1.1.0" {
		t.Fatalf("trial of the broken release: %q, %v", out, err)
	}
	// The service manager starts the installed binary again.
	if out, err := start(t, dir, "UPDATE_TEST_BROKEN=1.1.0"); err != nil || out != "rolled back 1.1.0\nrunning installed" {
		t.Fatalf("restart after the failed trial: %q, %v", out, err)
	}
	if m, err := u.Check(t.Context()); err != nil || m != nil {
		t.Errorf("the bad release is offered again: %v, %v", m, err)
	}
}

// TestRefused: a manifest signed by another key, a binary that does not
// match the manifest and a staged binary altered afterwards are never
// run.
func TestRefused(t *testing.T) {
	pinned := newKey(t)
	dir := t.TempDir()
	if _, err := updater(t, newRelease(t, "1.1.0", newKey(t), false), pinned, "1.0.0", dir).Check(t.Context()); !errors.Is(err, ErrSignature) {
		t.Errorf("another key's manifest: got %v, want ErrSignature", err)
	}
	r := newRelease(t, "1.1.0", pinned, false)
	for _, f := range []func([]byte) []byte{
		func(b []byte) []byte { return bytes.Replace(b, []byte(`"manifest": "`), []byte(`"manifest": "A`), 1) },
		func(b []byte) []byte { return []byte(`{"manifest":"e30=","signature":""}`) },
		func(b []byte) []byte { return nil },
	} {
		if _, err := Verify(f(r.manifest), []ed25519.PublicKey{pinned.Public().(ed25519.PublicKey)}); err == nil {
			t.Errorf("altered manifest %q accepted", f(r.manifest))
		}
	}
	tampered := newRelease(t, "1.1.0", pinned, true)
	u := updater(t, tampered, pinned, "1.0.0", dir)
	m, err := u.Check(t.Context())
	if err != nil || m == nil {
		t.Fatal(err)
	}
	if err := u.Stage(t.Context(), m); !errors.Is(err, ErrArtifact) {
		t.Errorf("a binary not matching the manifest: got %v, want ErrArtifact", err)
	}
	if out, err := start(t, dir); err != nil || out != "running installed" {
		t.Errorf("after a refused download: %q, %v", out, err)
	}
	u = updater(t, r, pinned, "1.0.0", dir)
	if m, err = u.Check(t.Context()); err != nil || u.Stage(t.Context(), m) != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "connectord-1.1.0")
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho pwned\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := start(t, dir); err != nil || !strings.Contains(out, "running installed") || strings.Contains(out, "pwned") {
		t.Errorf("an altered staged binary: %q, %v", out, err)
	}
}

func TestCompare(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.1", -1}, {"1.10.0", "1.9.9", 1}, {"2.0.0", "2.0.0", 0}, {"1.0.0-rc.1", "1.0.0", -1},
		{"v1.2.3", "1.2.3", 0}, {"garbage", "0.0.1", -1}, {"1.0.0", "1.0.0-rc.2", 1},
	} {
		if got := Compare(tt.a, tt.b); got != tt.want {
			t.Errorf("Compare(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestNewRefusesUnversionedBuild: a build without a version stamp
// ("devel") cannot tell a newer release, so it gets no updater (else it
// would take every release, and its successor too if also unstamped).
func TestNewRefusesUnversionedBuild(t *testing.T) {
	key := newKey(t)
	for _, cur := range []string{"devel", "", "1.2", "latest", "1.0.0; rm -rf /"} {
		_, err := New(Config{ManifestURL: "http://127.0.0.1:1/release.json", Keys: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)},
			Product: "connectord", Current: cur, Platform: "linux/amd64", Dir: t.TempDir()})
		if err == nil {
			t.Errorf("New with Current %q: got nil error, want a refusal", cur)
		}
	}
	for _, cur := range []string{"1.0.0", "v2.3.4", "1.1.0-rc.1", "0.0.0-dev"} {
		if !ValidVersion(cur) {
			t.Errorf("ValidVersion(%q) = false, want true", cur)
		}
	}
}
