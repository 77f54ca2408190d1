package harness

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/connector"
)

// TestConnectordOpensNoListeningSocket runs the real connectord binary
// (enroll, then run) against an in-process mesh, checks that it serves, and
// then inspects its sockets: none may listen on, or be an unconnected UDP
// socket bound to, a non-loopback address.
func TestConnectordOpensNoListeningSocket(t *testing.T) {
	h := start(t, Options{Connectors: -1})
	bin := buildCommand(t, "./connectord")
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, h.CA.CertPEM(), 0o644)
	state := filepath.Join(t.TempDir(), "state")
	tok, _, err := h.Authority.MintEnrollToken("hq", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// The mesh's certificate is signed by the harness's own CA: without
	// --mesh-ca, enrolment fails, says which flag fixes it and uses up
	// nothing (the same token still enrols).
	out, err := exec.CommandContext(t.Context(), bin, "enroll", "--mesh", h.Meshes()[0].URL, "--token", tok,
		"--state-dir", filepath.Join(t.TempDir(), "untrusted")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "pass --mesh-ca FILE") {
		t.Fatalf("enroll with an untrusted mesh certificate: got %v %s, want an error naming --mesh-ca", err, out)
	}
	enrol := exec.CommandContext(t.Context(), bin, "enroll", "--mesh", h.Meshes()[0].URL, "--state-dir", state, "--mesh-ca", ca,
		"--allow", "127.0.0.1")
	enrol.Env = append(os.Environ(), "POSTERN_ENROLL_TOKEN="+tok) // not on the command line
	out, err = enrol.CombinedOutput()
	if err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	if strings.Contains(string(out), tok) {
		t.Fatal("enroll printed the token")
	}
	if kept, err := os.ReadFile(filepath.Join(state, connector.MeshCAFile)); err != nil || string(kept) != string(h.CA.CertPEM()) {
		t.Fatalf("enroll did not keep the mesh CA in the state directory: %v", err)
	}
	// The run command enroll printed, exactly (plus a free admin port).
	_, runLine, found := strings.Cut(string(out), "start it with: ")
	runLine, _, _ = strings.Cut(runLine, "\n")
	runArgs := strings.Fields(runLine)
	if !found || len(runArgs) < 2 || runArgs[0] != "connectord" || runArgs[1] != "run" || strings.Contains(runLine, "--mesh-ca") ||
		!strings.Contains(runLine, "--allow 127.0.0.1") {
		t.Fatalf("enroll printed no run command with the allow-list and without --mesh-ca:\n%s", out)
	}
	// A second use of the same token is refused with a clear message.
	out, err = exec.CommandContext(t.Context(), bin, "enroll", "--mesh", h.Meshes()[0].URL, "--token", tok,
		"--state-dir", filepath.Join(t.TempDir(), "other"), "--mesh-ca", ca).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already been used") {
		t.Fatalf("reused token: got %v %s, want a refusal saying it was already used", err, out)
	}
	if !strings.Contains(string(out), "warning: --token puts the token in the process list") {
		t.Errorf("--token did not warn: %s", out)
	}
	for _, f := range []string{"wg.key", "state.json"} {
		fi, err := os.Stat(filepath.Join(state, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v, want 0600", f, err, fi.Mode().Perm())
		}
	}
	// Without an allow-list the connector refuses to run.
	if out, err := exec.CommandContext(t.Context(), bin, "run", "--state-dir", state, "--admin", "").CombinedOutput(); err == nil || !strings.Contains(string(out), "--allow-any") {
		t.Fatalf("run without --allow: got %v %s, want a refusal", err, out)
	}
	var logs SyncBuffer // connectord keeps logging while the test reads
	run := exec.Command(bin, append(runArgs[1:], "--admin", "127.0.0.1:0")...)
	run.Stderr = &logs
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Process.Kill(); run.Wait() })
	c := h.MeshClient(0)
	err = WaitFor(t.Context(), 20*time.Second, func() bool {
		resp, err := c.Get(h.AppURL(0, "/hello"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if err != nil {
		t.Fatalf("connectord never served\n%s", logs.String())
	}
	socks, err := processSockets(run.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) == 0 {
		t.Fatal("found no sockets at all: the inspection is broken")
	}
	var sawUDP bool
	for _, s := range socks {
		t.Logf("%s", s)
		if s.proto == "udp" {
			sawUDP = true
		}
		if s.local.Addr().IsLoopback() {
			continue
		}
		if s.proto == "tcp" && s.state == "0A" {
			t.Errorf("listening TCP socket on %s", s.local)
		}
		if s.proto == "udp" && !s.remote.Addr().IsValid() {
			t.Errorf("unconnected UDP socket bound to %s: it would accept datagrams from anyone", s.local)
		}
	}
	if !sawUDP {
		t.Error("no UDP socket found for WireGuard: the inspection is broken")
	}
	if strings.Contains(logs.String(), tok) {
		t.Error("the token appears in connectord's log")
	}
}

type sock struct {
	proto         string
	local, remote netip.AddrPort // remote invalid when unconnected
	state         string
}

func (s sock) String() string {
	return fmt.Sprintf("%s %s -> %s state %s", s.proto, s.local, s.remote, s.state)
}

// processSockets lists the TCP and UDP sockets that pid holds open.
func processSockets(pid int) ([]sock, error) {
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []sock
	for _, f := range []string{"tcp", "tcp6", "udp", "udp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 || !inodes[fields[9]] {
				continue
			}
			s := sock{proto: strings.TrimSuffix(f, "6"), state: fields[3]}
			if s.local, err = parseProcAddr(fields[1]); err != nil {
				return nil, err
			}
			if r, err := parseProcAddr(fields[2]); err == nil && !(r.Addr().IsUnspecified() && r.Port() == 0) {
				s.remote = r
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// parseProcAddr parses /proc/net's "HEX:PORT", where the address is stored
// as 32-bit words in host (little-endian) order.
func parseProcAddr(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(raw[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000000000000000000001000000:0050": "[::1]:80",
		"0000000000000000FFFF00000100007F:0016": "127.0.0.1:22",
	} {
		got, err := parseProcAddr(in)
		if err != nil || got.String() != want {
			t.Errorf("parseProcAddr(%s): got %v %v, want %s", in, got, err, want)
		}
	}
}

func connectorState(dir string) (string, error) {
	st, err := connector.LoadState(dir)
	if err != nil {
		return "", err
	}
	return st.Credential, nil
}
