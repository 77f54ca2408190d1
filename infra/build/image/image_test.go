package image

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// repoRoot is the postern module, three levels up.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "meshd")); err != nil {
		tb.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

// TestImages builds the meshd and connectord images twice from source
// (same digests), writes and reads back their OCI layouts, and checks each
// platform's image: OCI media types, linux/amd64 and linux/arm64, user
// 65532, the binary as entrypoint, no shell, the state directory owned by
// the user and declared a volume; then it unpacks the amd64 root
// filesystem and runs the binary in it (chrooted when the test runs as
// root), and checks the arm64 binary is a static aarch64 executable.
func TestImages(t *testing.T) {
	root := repoRoot(t)
	for _, spec := range Postern() {
		t.Run(spec.Name, func(t *testing.T) {
			t.Parallel()
			spec.Version, spec.Created = "1.2.3", time.Unix(1_700_000_000, 0)
			idx1, err := BuildFromSource(root, "./"+spec.Name, t.TempDir(), spec, "")
			if err != nil {
				t.Fatal(err)
			}
			idx2, err := BuildFromSource(root, "./"+spec.Name, t.TempDir(), spec, "")
			if err != nil {
				t.Fatal(err)
			}
			d1, _ := idx1.Digest()
			d2, _ := idx2.Digest()
			if d1 != d2 {
				t.Fatalf("two builds: digests %s and %s, want the same", d1, d2)
			}
			dir := filepath.Join(t.TempDir(), "layout")
			if err := WriteLayout(dir, idx1); err != nil {
				t.Fatal(err)
			}
			// The layout's index.json is the image index itself.
			idx, err := layout.ImageIndexFromPath(dir)
			if err != nil {
				t.Fatal(err)
			}
			if d, err := idx.Digest(); err != nil || d != d1 {
				t.Fatalf("layout holds %s (%v), want %s", d, err, d1)
			}
			checkIndex(t, idx, spec)
		})
	}
}

func checkIndex(t *testing.T, idx v1.ImageIndex, spec Spec) {
	t.Helper()
	mt, _ := idx.MediaType()
	im, err := idx.IndexManifest()
	if err != nil || mt != types.OCIImageIndex {
		t.Fatalf("index: %s, %v", mt, err)
	}
	var arches []string
	for _, m := range im.Manifests {
		arches = append(arches, m.Platform.OS+"/"+m.Platform.Architecture)
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, img, spec, m.Platform.Architecture)
	}
	if !slices.Equal(arches, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("platforms %v, want linux/amd64 and linux/arm64", arches)
	}
}

func checkImage(t *testing.T, img v1.Image, spec Spec, arch string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	bin := "/usr/local/bin/" + spec.Name
	if cf.OS != "linux" || cf.Architecture != arch || cf.Config.User != "65532:65532" || !slices.Equal(cf.Config.Entrypoint, []string{bin}) {
		t.Errorf("%s config: os %s arch %s user %q entrypoint %v", arch, cf.OS, cf.Architecture, cf.Config.User, cf.Config.Entrypoint)
	}
	if _, ok := cf.Config.Volumes[spec.StateDir]; !ok || !cf.Created.Time.Equal(spec.Created) {
		t.Errorf("%s config: volumes %v created %v", arch, cf.Config.Volumes, cf.Created)
	}
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("%s manifest media type %s", arch, mt)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%s: %d layers, %v", arch, len(layers), err)
	}
	rootDir := t.TempDir()
	entries := unpack(t, layers[0], rootDir)
	for _, shell := range []string{"bin/sh", "bin/bash", "bin/busybox", "usr/bin/sh"} {
		if _, ok := entries[shell]; ok {
			t.Errorf("%s: the image has %s", arch, shell)
		}
	}
	if h := entries[strings.TrimPrefix(spec.StateDir, "/")+"/"]; h == nil || h.Uid != User || h.Mode&0o777 != 0o700 {
		t.Errorf("%s: state directory %+v, want 0700 owned by %d", arch, h, User)
	}
	if h := entries["usr/local/bin/"+spec.Name]; h == nil || h.Uid != 0 || h.Mode&0o777 != 0o755 {
		t.Errorf("%s: binary %+v, want root-owned 0755 (the user cannot replace it)", arch, h)
	}
	if h := entries["etc/ssl/certs/ca-certificates.crt"]; h == nil || h.Size < 100_000 {
		t.Errorf("%s: CA bundle %+v", arch, h)
	}
	f, err := elf.Open(filepath.Join(rootDir, bin))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != want {
		t.Errorf("%s: binary for %v", arch, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: binary is dynamically linked: it would not run on an empty base", arch)
		}
	}
	if arch == "amd64" {
		run(t, rootDir, bin, spec.Version)
		checkReadOnlyRoot(t, rootDir, spec, cf.Config.Env)
	}
}

// run runs the image's binary's "version" from the unpacked root
// filesystem, as the image's user, chrooted when the test may: it prints
// the image's version.
func run(t *testing.T, rootDir, bin, version string) {
	t.Helper()
	cmd := exec.Command(bin, "version")
	cmd.Env = []string{"PATH=/usr/local/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Chroot = rootDir
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: User, Gid: User}
		cmd.Dir = "/"
	} else {
		cmd.Path = filepath.Join(rootDir, bin)
		t.Logf("not root: running %s without chroot", cmd.Path)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || !strings.HasPrefix(out.String(), filepath.Base(bin)+" "+version+",") {
		t.Errorf("%s version in the image: %v, want version %s\n%s", bin, err, version, out.String())
	}
}

// unpack extracts layer into dir and returns its headers by name.
func unpack(t *testing.T, layer v1.Layer, dir string) map[string]*tar.Header {
	t.Helper()
	rc, err := layer.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = h
		p := filepath.Join(dir, h.Name)
		if !strings.HasPrefix(p, dir) {
			t.Fatalf("entry %s escapes the root", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, os.FileMode(h.Mode)&0o777|0o700); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, os.FileMode(h.Mode)&0o777|0o011) // searchable for the image's user
		case tar.TypeReg:
			os.MkdirAll(filepath.Dir(p), 0o755)
			b, _ := io.ReadAll(tr)
			if err := os.WriteFile(p, b, os.FileMode(h.Mode)&0o777); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestBuildFromSourceRefusesOddVersion: the version goes into -ldflags,
// so one that would split or quote them is refused before any build.
func TestBuildFromSourceRefusesOddVersion(t *testing.T) {
	for _, v := range []string{"1.0 -X main.x=y", "1.0'", "1.0\"", "1.0\n", "1.0\\x"} {
		if _, err := BuildFromSource(t.TempDir(), "./nope", t.TempDir(), Spec{Name: "meshd", Version: v}, ""); err == nil || !strings.Contains(err.Error(), "version") {
			t.Errorf("version %q: got %v, want a refusal", v, err)
		}
	}
}
