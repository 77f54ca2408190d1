package infratest

import (
	"bytes"
	"encoding/base64"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/testkit"
)

// units are the systemd units shipped in the packages.
var units = []string{"postern-connectord.service", "postern-meshd.service"}

// unitRoot builds a root directory for systemd-analyze --root: the host's
// system units, the Postern units, and stand-in executables.
func unitRoot(tb testing.TB) string {
	tb.Helper()
	root := tb.TempDir()
	sys := filepath.Join(root, "usr", "lib", "systemd", "system")
	if err := os.MkdirAll(filepath.Join(root, "usr", "bin"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.CopyFS(sys, os.DirFS("/usr/lib/systemd/system")); err != nil {
		tb.Fatalf("copy the host's systemd units: %v", err)
	}
	for _, u := range units {
		b, err := os.ReadFile(filepath.Join(repoRoot(tb), "infra", "packaging", "systemd", u))
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sys, u), b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	for _, bin := range []string{"connectord", "meshd"} {
		if err := os.WriteFile(filepath.Join(root, "usr", "bin", bin), []byte("#!/bin/sh\n"), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	return root
}

func TestSystemdUnitsVerify(t *testing.T) {
	analyze := testkit.Tool(t, "systemd-analyze")
	root := unitRoot(t)
	for _, u := range units {
		t.Run(u, func(t *testing.T) {
			out, err := runErr(t, root, nil, analyze, "verify", "--man=no", "--root="+root, u)
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
			// Exposure score at most 2.0 of 10 ("OK" is below 5).
			out, err = runErr(t, root, nil, analyze, "security", "--offline=yes", "--root="+root, "--threshold=20", "--no-pager", u)
			if err != nil {
				t.Errorf("systemd-analyze security: exposure above 2.0: %v\n%s", err, out)
			}
		})
	}
}

func TestSystemdUnitsHardening(t *testing.T) {
	common := []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "SystemCallFilter=@system-service", "StateDirectory=postern-"}
	want := map[string][]string{
		"postern-connectord.service": append([]string{"User=postern-connector", "CapabilityBoundingSet=\n", "AmbientCapabilities=\n"}, common...),
		"postern-meshd.service":      append([]string{"User=postern-meshd", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n", "AmbientCapabilities=CAP_NET_BIND_SERVICE\n", "LoadCredential=authority.key:"}, common...),
	}
	for u, lines := range want {
		t.Run(u, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(repoRoot(t), "infra", "packaging", "systemd", u))
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range lines {
				if !strings.Contains(string(b), "\n"+l) {
					t.Errorf("got no line %q", l)
				}
			}
		})
	}
}

func TestPackages(t *testing.T) {
	nfpm := testkit.Tool(t, "nfpm")
	dpkgDeb := testkit.Tool(t, "dpkg-deb")
	work := t.TempDir()
	// nfpm reads dist/package/ and infra/ relative to its working directory.
	if err := os.Symlink(filepath.Join(repoRoot(t), "infra"), filepath.Join(work, "infra")); err != nil {
		t.Fatal(err)
	}
	run(t, "", []string{"GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0"}, "go", "build", "-trimpath",
		"-o", filepath.Join(work, "dist", "package")+"/", "./connectord", "./meshd")
	env := []string{"GOARCH=amd64", "VERSION=0.0.0-test"}
	want := map[string][]string{
		"connectord": {"./usr/bin/connectord", "./usr/lib/systemd/system/postern-connectord.service",
			"./usr/lib/sysusers.d/postern-connector.conf", "./etc/postern/connectord.env", "./usr/sbin/postern-connector-enroll"},
		"meshd": {"./usr/bin/meshd", "./usr/lib/systemd/system/postern-meshd.service",
			"./usr/lib/sysusers.d/postern-meshd.conf", "./etc/postern/meshd.env"},
	}
	var names []string
	for name, files := range want {
		names = append(names, name)
		t.Run(name, func(t *testing.T) {
			cfg := filepath.Join("infra", "packaging", "nfpm-"+name+".yaml")
			out := filepath.Join(work, "out-"+name)
			if err := os.MkdirAll(out, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"deb", "rpm"} {
				run(t, work, env, nfpm, "package", "-f", cfg, "-p", p, "-t", out+"/")
			}
			debs, _ := filepath.Glob(filepath.Join(out, "*.deb"))
			rpms, _ := filepath.Glob(filepath.Join(out, "*.rpm"))
			if len(debs) != 1 || len(rpms) != 1 {
				t.Fatalf("got debs %v rpms %v, want one of each", debs, rpms)
			}
			listing := string(run(t, work, nil, dpkgDeb, "-c", debs[0]))
			for _, f := range files {
				if !strings.Contains(listing, " "+f+"\n") {
					t.Errorf("%s: got no %s in\n%s", filepath.Base(debs[0]), f, listing)
				}
			}
			if !strings.Contains(listing, "-rwxr-xr-x root/root") {
				t.Errorf("no executable owned by root in\n%s", listing)
			}
			control := string(run(t, work, nil, dpkgDeb, "-I", debs[0]))
			for _, w := range []string{"Package: postern-" + name, "Architecture: amd64", "postinst", "prerm"} {
				if !strings.Contains(control, w) {
					t.Errorf("control: got no %q in\n%s", w, control)
				}
			}
		})
	}
	t.Run("repository metadata", func(t *testing.T) {
		pkgs := filepath.Join(work, "packages")
		if err := os.MkdirAll(pkgs, 0o755); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(work, "out-*", "*"))
		for _, f := range files {
			if err := os.Rename(f, filepath.Join(pkgs, filepath.Base(f))); err != nil {
				t.Fatal(err)
			}
		}
		checkRepoMetadata(t, pkgs, names)
	})
}

func TestCrossCompile(t *testing.T) {
	targets := []struct{ goos, goarch string }{{"windows", "amd64"}, {"linux", "arm64"}, {"linux", "amd64"}}
	for _, tt := range targets {
		t.Run(tt.goos+"-"+tt.goarch, func(t *testing.T) {
			// Linux: -trimpath as the packages and images (infra/build)
			// build, so that those builds reuse these compilations.
			args := []string{"build", "-o", os.DevNull, "./connectord", "./meshd"}
			if tt.goos == "linux" {
				args = append([]string{"build", "-trimpath"}, args[1:]...)
			}
			run(t, "", []string{"GOOS=" + tt.goos, "GOARCH=" + tt.goarch, "CGO_ENABLED=0"}, "go", args...)
		})
	}
	t.Run("winsvc-windows-vet", func(t *testing.T) {
		run(t, "", []string{"GOOS=windows", "GOARCH=amd64"}, "go", "vet", "./pkg/winsvc")
	})
}

func TestInstallScript(t *testing.T) {
	script := filepath.Join(repoRoot(t), "infra", "scripts", "install-connector.sh")
	run(t, "", nil, "sh", "-n", script)
	tests := []struct {
		name    string
		env     []string
		args    []string
		wantErr string
		wantOut string
	}{
		{"dry run", []string{"POSTERN_ENROLL_TOKEN=t"}, []string{"--mesh", "https://mesh.example.com", "--base-url", "https://dl.example.com/0.1.0", "--allow", "10.1.0.0/16:443", "--dry-run"}, "", "postern-connectord"},
		{"dry run, allow any", []string{"POSTERN_ENROLL_TOKEN=t"}, []string{"--mesh", "https://mesh.example.com", "--base-url", "https://dl.example.com/0.1.0", "--allow-any", "--dry-run"}, "", "postern-connectord"},
		{"no allow-list", []string{"POSTERN_ENROLL_TOKEN=t"}, []string{"--mesh", "https://mesh.example.com", "--base-url", "https://dl.example.com/0.1.0", "--dry-run"}, "--allow is required", ""},
		{"no token", []string{"POSTERN_ENROLL_TOKEN="}, []string{"--mesh", "https://mesh.example.com", "--base-url", "https://dl/0.1.0", "--allow", "10.0.0.0/8", "--dry-run"}, "POSTERN_ENROLL_TOKEN", ""},
		{"plain http mesh", []string{"POSTERN_ENROLL_TOKEN=t"}, []string{"--mesh", "http://mesh.example.com", "--base-url", "https://dl/0.1.0", "--allow", "10.0.0.0/8", "--dry-run"}, "https://", ""},
		{"no mesh", []string{"POSTERN_ENROLL_TOKEN=t"}, []string{"--base-url", "https://dl/0.1.0"}, "--mesh is required", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runErr(t, "", tt.env, "sh", append([]string{script}, tt.args...)...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(string(out), tt.wantErr) {
					t.Errorf("got %v %s, want an error naming %q", err, out, tt.wantErr)
				}
				return
			}
			if err != nil || !strings.Contains(string(out), tt.wantOut) {
				t.Errorf("got %v %s, want output naming %q", err, out, tt.wantOut)
			}
		})
	}
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	keygen := buildTool(t, dir, "keygen")
	out := filepath.Join(dir, "secrets")
	jwks := run(t, "", nil, keygen, "-out", out)
	keysPath, statePath := filepath.Join(out, "session-keys.json"), filepath.Join(out, "state-key")
	for _, p := range []string{keysPath, statePath} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: got mode %v, want %v", filepath.Base(p), st.Mode().Perm(), fs.FileMode(0o600))
		}
	}
	keys, _ := os.ReadFile(keysPath)
	ks, err := session.ParseKeyset(keys)
	if err != nil {
		t.Fatalf("session-keys.json: %v", err)
	}
	if !strings.Contains(string(jwks), ks.ActiveKID()) || strings.Contains(string(jwks), `"d"`) {
		t.Errorf("printed JWKS: got %s, want the public key of kid %s only", jwks, ks.ActiveKID())
	}
	state, _ := os.ReadFile(statePath)
	if raw, err := base64.StdEncoding.DecodeString(string(state)); err != nil || len(raw) != 32 {
		t.Errorf("state-key: got %d bytes (%v), want 32", len(raw), err)
	}
	// A second run keeps every file and says so.
	if out, err := exec.Command(keygen, "--out", out).CombinedOutput(); err != nil || !strings.Contains(string(out), "kept") {
		t.Errorf("second run: got %v %s, want success keeping the files", err, out)
	}
	if again, _ := os.ReadFile(keysPath); !bytes.Equal(again, keys) {
		t.Errorf("second run changed session-keys.json")
	}
}
