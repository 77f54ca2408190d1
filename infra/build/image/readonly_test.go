package image

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// roCase is one command run from an unpacked image and what it must do.
type roCase struct {
	// args follow the entrypoint.
	args []string
	// ok is whether it must exit 0; want is text its output must hold.
	ok   bool
	want string
	// stateFiles must be in the state directory afterwards.
	stateFiles []string
}

// roCases are the commands each image runs under TestImages' read-only
// root and write checks. mesh is the URL of a local listener that drops
// every connection (a mesh that is not there).
func roCases(name, stateDir, mesh string) []roCase {
	version := roCase{args: []string{"version"}, ok: true, want: name + " 1.2.3,"}
	switch name {
	case "connectord":
		return []roCase{version,
			// Not enrolled: a clear error before anything else.
			{args: []string{"run", "--allow=10.0.0.0/8", "--admin="}, want: "connector is not enrolled"},
			// A container's first start: enrols (its key goes to the
			// state directory) at a mesh that is not there.
			{args: []string{"run", "--allow=10.0.0.0/8", "--admin=127.0.0.1:0", "--mesh=" + mesh, "--enroll-token-file=/etc/postern/tokens/token"},
				want: "enroll: Post \"" + mesh + "/.postern/v1/enroll\"", stateFiles: []string{"wg.key"}},
		}
	case "meshd":
		return []roCase{version,
			{args: []string{"node", "keys", "--state-dir=" + stateDir}, ok: true, want: "--node-key ", stateFiles: []string{"node.key", "wg.key"}},
			{args: []string{"run", "--id=mesh-a", "--region=eu", "--state-dir=" + stateDir}, want: "--authority-key is required"},
		}
	}
	return nil
}

// deadMesh is a TLS-less listener on loopback that closes every
// connection at once: a mesh node that is not there, without depending
// on a port being free.
func deadMesh(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return "https://" + ln.Addr().String()
}

// checkReadOnlyRoot runs the image's binary from rootDir (the unpacked
// amd64 root filesystem) the way Kubernetes runs it with
// readOnlyRootFilesystem: in a mount namespace of its own, the root
// filesystem a read-only bind mount, only the state directory and /tmp
// writable, chrooted, as user 65532. Each command must do what roCases
// says and never meet a read-only file system. Then it runs the same
// commands on a root filesystem where user 65532 may write everywhere and
// compares the tree before and after: nothing outside the state directory
// and /tmp may have been created, changed or removed (a write whose error
// the binary swallowed shows here).
func checkReadOnlyRoot(t *testing.T, rootDir string, spec Spec, env []string) {
	t.Helper()
	const needRoot = "skipped: it needs root (mount namespace, chroot, setuid to 65532); CI runs as root"
	// What the pod gives the container: the token Secret's file (made
	// here, before the root turns read-only).
	for _, d := range []string{"etc/postern/tokens"} {
		if err := os.MkdirAll(filepath.Join(rootDir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rootDir, "etc/postern/tokens/token"), []byte("not-a-real-token\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	for _, e := range env {
		if strings.ContainsAny(e, " \t\n'\"$") {
			t.Fatalf("image environment %q: the read-only run passes it through a shell word list", e)
		}
	}
	mesh := deadMesh(t)
	bin := "/usr/local/bin/" + spec.Name
	cases := roCases(spec.Name, spec.StateDir, mesh)
	if len(cases) == 0 {
		t.Fatalf("no read-only cases for %s", spec.Name)
	}

	t.Run("read-only root", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip(needRoot)
		}
		if out, err := exec.Command("unshare", "--mount", "--propagation", "private", "true").CombinedOutput(); err != nil {
			t.Skipf("read-only root filesystem check skipped: this kernel or container forbids a mount namespace (unshare --mount: %v: %s)", err, bytes.TrimSpace(out))
		}
		for _, c := range cases {
			state, tmp := ownedDir(t), ownedDir(t)
			script := strings.Join([]string{
				"set -e",
				`mount --bind "$R" "$R"`,
				`mount -o remount,bind,ro "$R"`,
				`mount --bind "$STATE" "$R$STATEDIR"`,
				`mount --bind "$TMP" "$R/tmp"`,
				// Prove the root is read-only (even for root) before
				// trusting the result.
				`if touch "$R/etc/postern/probe" 2>/dev/null; then echo "root is writable" >&2; exit 99; fi`,
				// The binary sees only the image's environment.
				`chroot=$(command -v chroot)`,
				`exec env -i $IMAGE_ENV "$chroot" --userspec=65532:65532 "$R" "$BIN" "$@"`,
			}, "\n")
			cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh"}, c.args...)...)
			cmd.Env = append(os.Environ(), "IMAGE_ENV="+strings.Join(env, " "), "R="+rootDir, "STATE="+state, "TMP="+tmp, "STATEDIR="+spec.StateDir, "BIN="+bin)
			out, err := runCase(t, cmd, c)
			if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 99 {
				t.Fatalf("the root filesystem was not read-only: %s", out)
			}
			if strings.Contains(strings.ToLower(out), "read-only file system") {
				t.Errorf("%s %v met the read-only root:\n%s", spec.Name, c.args, out)
			}
			checkState(t, state, c)
			if _, err := os.Stat(filepath.Join(rootDir, "etc/postern/probe")); err == nil {
				t.Fatal("the probe file was written through the read-only mount")
			}
		}
	})

	t.Run("writes nowhere else", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip(needRoot)
		}
		// Let user 65532 write anywhere, so that a write outside the
		// state directory and /tmp succeeds and shows in the tree.
		err := filepath.WalkDir(rootDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type()&fs.ModeSymlink != 0 {
				return nil
			}
			return os.Chmod(p, 0o777)
		})
		if err != nil {
			t.Fatal(err)
		}
		skip := []string{strings.TrimPrefix(spec.StateDir, "/"), "tmp"}
		for _, c := range cases {
			os.RemoveAll(filepath.Join(rootDir, spec.StateDir))
			if err := os.Mkdir(filepath.Join(rootDir, spec.StateDir), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(filepath.Join(rootDir, spec.StateDir), User, User); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, rootDir, skip)
			cmd := exec.Command(bin, c.args...)
			cmd.Env = env
			cmd.Dir = "/"
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootDir, Credential: &syscall.Credential{Uid: User, Gid: User}}
			runCase(t, cmd, c)
			checkState(t, filepath.Join(rootDir, spec.StateDir), c)
			after := snapshot(t, rootDir, skip)
			for p, s := range after {
				if before[p] != s {
					t.Errorf("%s %v wrote %s outside its state directory and /tmp (%q, was %q)", spec.Name, c.args, p, s, before[p])
				}
			}
			for p := range before {
				if _, ok := after[p]; !ok {
					t.Errorf("%s %v removed %s", spec.Name, c.args, p)
				}
			}
		}
	})
}

// runCase runs cmd and checks its exit and output against c.
func runCase(t *testing.T, cmd *exec.Cmd, c roCase) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if (err == nil) != c.ok || !strings.Contains(out.String(), c.want) {
		t.Errorf("%v: exit %v, want success %v and output holding %q:\n%s", c.args, err, c.ok, c.want, out.String())
	}
	return out.String(), err
}

// checkState: the files c promises are in the state directory dir.
func checkState(t *testing.T, dir string, c roCase) {
	t.Helper()
	for _, f := range c.stateFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%v: want %s in the state directory: %v", c.args, f, err)
		}
	}
}

// ownedDir is a new empty directory owned by the image's user, 0700.
func ownedDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, User, User); err != nil {
		t.Fatal(err)
	}
	return d
}

// snapshot describes every entry under root but those under skip (paths
// relative to root) by type, mode, owner, size, modification time and, for
// files, content.
func snapshot(t *testing.T, root string, skip []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if slices.Contains(skip, rel) {
			return fs.SkipDir
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d %d %s", fi.Mode(), st.Uid, st.Gid, fi.Size(), fi.ModTime().UTC().Format(time.RFC3339Nano))
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
