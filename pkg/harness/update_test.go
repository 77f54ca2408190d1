package harness

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/update"
)

// buildConnectord builds the real connectord stamped with version.
func buildConnectord(t *testing.T, dir, version string) string {
	t.Helper()
	bin := filepath.Join(dir, "connectord-"+version)
	out, err := exec.Command("go", "build", "-ldflags", "-X github.com/postern/postern/pkg/cli.version="+version, "-o", bin, "../../connectord").CombinedOutput()
	if err != nil {
		t.Fatalf("build connectord %s: %v\n%s", version, err, out)
	}
	return bin
}

// supervised runs a command as systemd's Restart=on-failure does: it
// starts it again (at most 5 times) when it exits with an error, until the
// test ends.
type supervised struct {
	logs SyncBuffer
	mu   sync.Mutex // guards cmd and stopped
	cmd  *exec.Cmd
	stop bool
	done chan struct{}
}

func supervise(t *testing.T, env []string, bin string, args ...string) *supervised {
	t.Helper()
	s := &supervised{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for range 6 {
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), env...)
			cmd.Stdout, cmd.Stderr = &s.logs, &s.logs
			s.mu.Lock()
			if s.stop || cmd.Start() != nil {
				s.mu.Unlock()
				return
			}
			s.cmd = cmd
			s.mu.Unlock()
			err := cmd.Wait()
			s.mu.Lock()
			stopped := s.stop
			s.mu.Unlock()
			var exit *exec.ExitError
			if stopped || !errors.As(err, &exit) {
				return
			}
			fmt.Fprintf(&s.logs, "--- supervisor: exited (%v), starting again\n", err)
			time.Sleep(200 * time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		s.mu.Lock()
		s.stop = true
		if s.cmd != nil && s.cmd.Process != nil {
			s.cmd.Process.Kill()
		}
		s.mu.Unlock()
		<-s.done
	})
	return s
}

// committedVersion reads the version a connector's launcher runs.
func committedVersion(stateDir string) string {
	b, err := os.ReadFile(filepath.Join(stateDir, "update", "state.json"))
	if err != nil {
		return ""
	}
	var s struct {
		Current *struct{ Version string } `json:"current"`
	}
	if json.Unmarshal(b, &s) != nil || s.Current == nil {
		return ""
	}
	return s.Current.Version
}

// TestSelfUpdateUnderLoad: two connectors of a group run version 1.0.0
// of the real connectord, opted in to self-update, under a systemd-like
// supervisor. A local release server offers 1.1.0, signed by the pinned
// release key. Each connector stages it, waits for its group's update
// slot (one connector per slot across the mesh), drains, restarts into
// 1.1.0 on trial and commits once attached; meanwhile a client keeps
// requesting the app through the mesh, and not one request fails.
func TestSelfUpdateUnderLoad(t *testing.T) {
	h := start(t, Options{Connectors: -1, UpdateSlot: 20 * time.Second, DrainTimeout: 5 * time.Second})
	dir := t.TempDir()
	binA, binB := buildConnectord(t, dir, "1.0.0"), buildConnectord(t, dir, "1.1.0")
	_, releaseKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(binB)
	if err != nil {
		t.Fatal(err)
	}
	var downloads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/connectord-1.1.0":
			downloads.Add(1)
			w.Write(b)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	sum := sha256.Sum256(b)
	manifest, err := update.Sign(update.Manifest{Product: "connectord", Version: "1.1.0", Artifacts: map[string]update.Artifact{
		runtime.GOOS + "/" + runtime.GOARCH: {URL: srv.URL + "/connectord-1.1.0", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b))}}}, releaseKey)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/release.json", func(w http.ResponseWriter, r *http.Request) { w.Write(manifest) })
	rel := httptest.NewServer(mux)
	t.Cleanup(rel.Close)

	states, procs := superviseConnectors(t, h, dir, binA, releaseKey.Public().(ed25519.PublicKey),
		rel.URL+"/release.json", rel.URL+"/release.json")
	logs := func() string { return procs[0].logs.String() + "\n=====\n" + procs[1].logs.String() }
	// Load: requests one after another until both run 1.1.0.
	ld := startPacedLoad(t, h, logs)
	err = WaitFor(t.Context(), 180*time.Second, func() bool {
		return committedVersion(states[0]) == "1.1.0" && committedVersion(states[1]) == "1.1.0"
	})
	ok, failed, firstFailure := ld.stop()
	if err != nil {
		t.Fatalf("both connectors did not move to 1.1.0 (%q, %q): %v\n%s", committedVersion(states[0]), committedVersion(states[1]), err, logs())
	}
	t.Logf("%d requests during the update, %d failed; %d downloads", ok, failed, downloads.Load())
	if failed != 0 {
		t.Errorf("%d of %d requests failed during the update (first: %v)\n%s", failed, ok+failed, firstFailure, logs())
	}
	if ok < 100 {
		t.Errorf("only %d requests: no load", ok)
	}
	// One at a time: the second connector restarted only after the first
	// had committed its new version.
	restart := [2]time.Time{logTime(procs[0].logs.String(), "update_restart"), logTime(procs[1].logs.String(), "update_restart")}
	committed := [2]time.Time{logTime(procs[0].logs.String(), "update_committed"), logTime(procs[1].logs.String(), "update_committed")}
	first, second := 0, 1
	if restart[1].Before(restart[0]) {
		first, second = 1, 0
	}
	if restart[0].IsZero() || restart[1].IsZero() || committed[first].IsZero() || !restart[second].After(committed[first]) {
		t.Errorf("restarts %v, commits %v: the second connector restarted before the first had committed", restart, committed)
	}
}

// logTime returns the time of the first JSON log line whose msg is msg.
func logTime(logs, msg string) time.Time {
	for _, l := range strings.Split(logs, "\n") {
		var e struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && e.Msg == msg {
			return e.Time
		}
	}
	return time.Time{}
}

// TestSelfUpdateRefusedAndRolledBack: the real connectord under a
// systemd-like supervisor, two connectors of a group at 1.0.0. The first
// follows a manifest, signed by the pinned key, whose 1.1.0 is broken
// (it exits at once): it stages it, takes the group's update slot, drains,
// starts 1.1.0 on trial, which dies; the supervisor's next start rolls back
// to 1.0.0, which attaches again and never tries 1.1.0 again. The second
// follows a manifest signed by another key: refused, nothing downloaded.
// Meanwhile a client keeps requesting the app and not one request fails.
func TestSelfUpdateRefusedAndRolledBack(t *testing.T) {
	h := start(t, Options{Connectors: -1, UpdateSlot: 20 * time.Second, DrainTimeout: 5 * time.Second})
	dir := t.TempDir()
	binA := buildConnectord(t, dir, "1.0.0")
	pinnedPub, pinned, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, foreign, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	broken := []byte("#!/bin/sh\necho broken release >&2\nexit 3\n")
	var brokenDownloads, foreignDownloads, manifestFetches atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/connectord-1.1.0", func(w http.ResponseWriter, r *http.Request) { brokenDownloads.Add(1); w.Write(broken) })
	mux.HandleFunc("/foreign-1.1.0", func(w http.ResponseWriter, r *http.Request) { foreignDownloads.Add(1); w.Write(broken) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	sum := sha256.Sum256(broken)
	sign := func(path string, key ed25519.PrivateKey) []byte {
		m, err := update.Sign(update.Manifest{Product: "connectord", Version: "1.1.0", Artifacts: map[string]update.Artifact{
			runtime.GOOS + "/" + runtime.GOARCH: {URL: srv.URL + path, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(broken))}}}, key)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	good, bad := sign("/connectord-1.1.0", pinned), sign("/foreign-1.1.0", foreign)
	mux.HandleFunc("/release.json", func(w http.ResponseWriter, r *http.Request) { manifestFetches.Add(1); w.Write(good) })
	mux.HandleFunc("/foreign.json", func(w http.ResponseWriter, r *http.Request) { w.Write(bad) })

	states, procs := superviseConnectors(t, h, dir, binA, pinnedPub, srv.URL+"/release.json", srv.URL+"/foreign.json")
	logs := func() string { return procs[0].logs.String() + "\n=====\n" + procs[1].logs.String() }
	ld := startPacedLoad(t, h, logs)
	// Rolled back, attached again, and three more checks of the manifest
	// after that (1s apart) without a second try of the bad release.
	var fetchesAtRollback int32 = -1
	err = WaitFor(t.Context(), 180*time.Second, func() bool {
		l := procs[0].logs.String()
		rb := logTime(l, "update_rolled_back")
		if rb.IsZero() || !attachedAfter(l, rb) {
			return false
		}
		if fetchesAtRollback < 0 {
			fetchesAtRollback = manifestFetches.Load()
		}
		return manifestFetches.Load() >= fetchesAtRollback+3
	})
	ok, failed, firstFailure := ld.stop()
	if err != nil {
		t.Fatalf("the broken release was not rolled back and the connector did not attach again: %v\n%s", err, logs())
	}
	t.Logf("%d requests, %d failed", ok, failed)
	if failed != 0 {
		t.Errorf("%d of %d requests failed (first: %v)\n%s", failed, ok+failed, firstFailure, logs())
	}
	if ok < 100 {
		t.Errorf("only %d requests: no load", ok)
	}
	l0, l1 := procs[0].logs.String(), procs[1].logs.String()
	if n := strings.Count(l0, `"msg":"update_restart"`); n != 1 {
		t.Errorf("restarts into the broken release: got %d, want 1\n%s", n, l0)
	}
	if !strings.Contains(l0, "broken release") {
		t.Errorf("the broken release never ran on trial\n%s", l0)
	}
	if v := committedVersion(states[0]); v == "1.1.0" {
		t.Errorf("the broken release was kept")
	}
	if n := brokenDownloads.Load(); n != 1 {
		t.Errorf("downloads of the broken release: got %d, want 1", n)
	}
	if n := foreignDownloads.Load(); n != 0 || strings.Contains(l1, `"msg":"update_staged"`) || strings.Contains(l1, `"msg":"update_restart"`) {
		t.Errorf("a manifest signed by another key was followed (%d downloads)\n%s", n, l1)
	}
	if !strings.Contains(l1, `"msg":"update_check_failed"`) {
		t.Errorf("the foreign manifest's refusal was not logged\n%s", l1)
	}
}

// TestSelfUpdateWaitsForAnotherConnector: the only connector of its group
// follows a release signed by the pinned key but never restarts into it:
// the mesh refuses the group's update slot while no other connector of the
// group serves (the update would leave the group without service). The
// connector logs why, asks again, and keeps serving throughout.
func TestSelfUpdateWaitsForAnotherConnector(t *testing.T) {
	h := start(t, Options{Connectors: -1, UpdateSlot: 8 * time.Second, DrainTimeout: 5 * time.Second})
	dir := t.TempDir()
	bin := buildConnectord(t, dir, "1.0.0")
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	release := []byte("#!/bin/sh\nexit 3\n") // never started
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	sum := sha256.Sum256(release)
	manifest, err := update.Sign(update.Manifest{Product: "connectord", Version: "1.1.0", Artifacts: map[string]update.Artifact{
		runtime.GOOS + "/" + runtime.GOARCH: {URL: srv.URL + "/connectord-1.1.0", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(release))}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	mux.HandleFunc("/connectord-1.1.0", func(w http.ResponseWriter, r *http.Request) { w.Write(release) })
	mux.HandleFunc("/release.json", func(w http.ResponseWriter, r *http.Request) { w.Write(manifest) })

	states, procs := superviseConnectors(t, h, dir, bin, pub, srv.URL+"/release.json")
	logs := procs[0].logs.String
	ld := startPacedLoad(t, h, logs)
	err = WaitFor(t.Context(), 120*time.Second, func() bool { return strings.Count(logs(), `"msg":"update_waiting"`) >= 2 })
	ok, failed, firstFailure := ld.stop()
	if err != nil {
		t.Fatalf("the lone connector did not wait for another connector of its group: %v\n%s", err, logs())
	}
	if strings.Contains(logs(), `"msg":"update_restart"`) || committedVersion(states[0]) == "1.1.0" {
		t.Errorf("the lone connector restarted into the release\n%s", logs())
	}
	if !strings.Contains(logs(), "no other connector of group hq serves") {
		t.Errorf("the wait does not say why\n%s", logs())
	}
	if failed != 0 || ok < 10 {
		t.Errorf("%d of %d requests failed (first: %v)", failed, ok+failed, firstFailure)
	}
}

// attachedAfter reports whether the JSON logs have an "attached" line
// after t.
func attachedAfter(logs string, t time.Time) bool {
	for _, l := range strings.Split(logs, "\n") {
		var e struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && e.Msg == "attached" && e.Time.After(t) {
			return true
		}
	}
	return false
}

// pacedLoad requests the sample app through the first mesh node, one
// request every 5 ms at most (at most 100 000), until stopped: a load
// that lasts through minutes of update without running out (fault_test's
// load sends back to back).
type pacedLoad struct {
	ok, failed atomic.Int64
	first      atomic.Value // the first failure, as text
	done, quit chan struct{}
}

// startPacedLoad waits until the app answers through the mesh, then starts
// the load.
func startPacedLoad(t *testing.T, h *Harness, logs func() string) *pacedLoad {
	t.Helper()
	c := h.MeshClient(0)
	get := func() error {
		resp, err := c.Get(h.AppURL(0, "/hello"))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := WaitFor(t.Context(), 30*time.Second, func() bool { return get() == nil }); err != nil {
		t.Fatalf("the connectors never served: %s", logs())
	}
	l := &pacedLoad{done: make(chan struct{}), quit: make(chan struct{})}
	go func() {
		defer close(l.done)
		for n := 0; n < 100_000; n++ {
			select {
			case <-l.quit:
				return
			default:
			}
			if err := get(); err != nil {
				l.failed.Add(1)
				l.first.CompareAndSwap(nil, fmt.Sprintf("%s: %v", time.Now().Format(time.StampMilli), err))
			} else {
				l.ok.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { l.stop() })
	return l
}

// stop ends the load (idempotent) and returns the requests that
// succeeded, those that failed and the first failure.
func (l *pacedLoad) stop() (ok, failed int64, first any) {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	<-l.done
	return l.ok.Load(), l.failed.Load(), l.first.Load()
}

// superviseConnectors enrols one connector of group "hq" per manifest URL
// and runs each (bin) under the supervisor, opted in to self-update from
// its manifest with the pinned release key pub; it returns their state
// directories and processes.
func superviseConnectors(t *testing.T, h *Harness, dir, bin string, pub ed25519.PublicKey, manifests ...string) ([]string, []*supervised) {
	t.Helper()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, h.CA.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	key := base64.StdEncoding.EncodeToString(pub)
	var states []string
	var procs []*supervised
	for i, manifest := range manifests {
		state := filepath.Join(dir, fmt.Sprintf("state%d", i))
		tok, _, err := h.Authority.MintEnrollToken("hq", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		tokFile := filepath.Join(dir, fmt.Sprintf("token%d", i))
		if err := os.WriteFile(tokFile, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		p := supervise(t, nil, bin, "run", "--state-dir", state, "--mesh", h.Meshes()[0].URL, "--enroll-token-file", tokFile,
			"--mesh-ca", ca, "--admin", "", "--allow", "127.0.0.1", "--drain-timeout", "2s",
			"--update-url", manifest, "--update-key", key, "--update-every", "1s",
			"--update-trial-timeout", "12s", "--update-margin", "1s")
		states, procs = append(states, state), append(procs, p)
	}
	return states, procs
}

// TestSupervisedConnectordStopsOnStdinEOF: the real connectord started as
// update.Supervise starts a staged version (POSTERN_UPDATE_SUPERVISED=1,
// standard input a pipe from the supervisor) attaches and serves, and
// when the supervisor closes its standard input (the Windows service's
// Stop) it drains and exits with status 0. (Started by anything else, its
// standard input is ignored: every other test runs it on /dev/null.)
func TestSupervisedConnectordStopsOnStdinEOF(t *testing.T) {
	h := start(t, Options{Connectors: -1})
	dir := t.TempDir()
	bin := buildConnectord(t, dir, "1.0.0")
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, h.CA.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, _, err := h.Authority.MintEnrollToken("hq", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := testkit.FreeAddr(t)
	cmd := exec.Command(bin, "run", "--state-dir", filepath.Join(dir, "state"), "--mesh", h.Meshes()[0].URL, "--enroll-token-file", tokFile,
		"--mesh-ca", ca, "--admin", admin, "--allow", "127.0.0.1", "--drain-timeout", "2s")
	cmd.Env = append(os.Environ(), update.EnvSupervised+"=1", update.EnvLaunched+"=1")
	var logs SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	testkit.WaitFor(t, time.Minute, "the supervised connector attached", func() bool {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, logs.String)
	if resp, body := navigate(t, h.Browser(), h.AppURL(0, "/headers"), "", ""); resp.StatusCode != 200 {
		t.Fatalf("through the supervised connector: %d %s", resp.StatusCode, body)
	}
	select {
	case err := <-done:
		t.Fatalf("exited before its input was closed: %v\n%s", err, logs.String())
	default:
	}
	stdin.Close()
	var exitErr error
	testkit.WaitFor(t, time.Minute, "the connector exited after its input closed", func() bool {
		select {
		case exitErr = <-done:
			done <- exitErr // for the cleanup
			return true
		default:
			return false
		}
	}, logs.String)
	if exitErr != nil {
		t.Fatalf("exit after the stop request: %v, want status 0\n%s", exitErr, logs.String())
	}
}
