// Package image builds Postern's container images without a container
// engine: an OCI image index for linux/amd64 and linux/arm64 whose images
// hold one static binary on an empty base, with the Mozilla root
// certificates (x509roots/fallback, pinned by go.mod), an /etc/passwd
// naming the non-root user 65532, and an empty state directory owned by
// it. No shell, no package manager, nothing to write outside a volume: the
// images run with a read-only root filesystem. Every timestamp is fixed
// (SOURCE_DATE_EPOCH, or 1970), so the same sources and Go toolchain give
// the same digests.
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// User is the uid and gid the images run as.
const User = 65532

// Arches are the platforms every image is built for.
var Arches = []string{"amd64", "arm64"}

// Spec describes one image.
type Spec struct {
	// Name is the binary's name, such as "meshd"; it is installed as
	// /usr/local/bin/<Name> and is the entrypoint.
	Name string
	// Binaries maps a GOARCH of Arches to the path of the static linux
	// binary built for it.
	Binaries map[string]string
	// StateDir is a directory created empty, owned by User, mode 0700:
	// mount a volume there.
	StateDir string
	// Version labels the image (org.opencontainers.image.version).
	Version string
	// Created is every timestamp of the image; the zero value means the
	// Unix epoch.
	Created time.Time
}

// Postern returns the specs of Postern's images, meshd and connectord, with
// the state directories their binaries use by default (Version, Created and
// Binaries are left for the caller).
func Postern() []Spec {
	return []Spec{
		{Name: "meshd", StateDir: "/var/lib/postern-meshd"},
		{Name: "connectord", StateDir: "/var/lib/postern-connector"},
	}
}

// Build returns the image index of spec.
func Build(spec Spec) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range Arches {
		bin, ok := spec.Binaries[arch]
		if !ok {
			return nil, fmt.Errorf("image %s: no binary for %s", spec.Name, arch)
		}
		img, err := buildImage(spec, arch, bin)
		if err != nil {
			return nil, fmt.Errorf("image %s/%s: %w", spec.Name, arch, err)
		}
		p := &v1.Platform{OS: "linux", Architecture: arch}
		if arch == "arm64" {
			p.Variant = "v8"
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	return idx, nil
}

func buildImage(spec Spec, arch, binPath string) (v1.Image, error) {
	bin, err := os.ReadFile(binPath)
	if err != nil {
		return nil, err
	}
	created := spec.Created.UTC()
	if created.IsZero() {
		created = time.Unix(0, 0).UTC()
	}
	layerBytes, err := rootfs(spec, bin, created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerBytes)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: created}, CreatedBy: "postern infra/build/image", Comment: spec.Name + " " + spec.Version}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	if arch == "arm64" {
		cf.Variant = "v8"
	}
	cf.Created = v1.Time{Time: created}
	cf.Author = "Postern"
	cf.Config.User = fmt.Sprintf("%d:%d", User, User)
	cf.Config.Entrypoint = []string{"/usr/local/bin/" + spec.Name}
	cf.Config.Cmd = nil
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":   "postern-" + spec.Name,
		"org.opencontainers.image.version": spec.Version,
		"org.opencontainers.image.source":  "https://github.com/postern/postern",
	}
	if spec.StateDir != "" {
		cf.Config.Volumes = map[string]struct{}{spec.StateDir: {}}
	}
	return mutate.ConfigFile(img, cf)
}

// file is one entry of the root filesystem.
type file struct {
	name string
	mode int64
	uid  int
	data []byte
	dir  bool
}

// rootfs returns the gzipped tar of the image's root filesystem.
func rootfs(spec Spec, bin []byte, created time.Time) ([]byte, error) {
	files := []file{
		{name: "etc/passwd", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", User, User))},
		{name: "etc/group", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", User))},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: caBundle()},
		{name: "usr/local/bin/" + spec.Name, mode: 0o755, data: bin},
		{name: "tmp", mode: 0o1777, dir: true},
		{name: "home/nonroot", mode: 0o700, uid: User, dir: true},
	}
	if spec.StateDir != "" {
		files = append(files, file{name: path.Clean(spec.StateDir)[1:], mode: 0o700, uid: User, dir: true})
	}
	// Parent directories, root-owned 0755, each once.
	seen := map[string]bool{}
	for _, f := range files {
		seen[f.name] = true
	}
	for _, f := range append([]file(nil), files...) {
		for d := path.Dir(f.name); d != "."; d = path.Dir(d) {
			if !seen[d] {
				seen[d] = true
				files = append(files, file{name: d, mode: 0o755, dir: true})
			}
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(gz)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: created, Format: tar.FormatPAX,
			Uname: "", Gname: ""}
		if f.dir {
			h.Typeflag, h.Name = tar.TypeDir, f.name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// caBundle returns the unconstrained Mozilla roots of the pinned
// x509roots/fallback bundle as PEM (a constrained root cannot be written
// as plain PEM, so it is left out).
func caBundle() []byte {
	var b bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate})
	}
	return b.Bytes()
}
