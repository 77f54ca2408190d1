package image

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// GoBuild builds package pkg (such as "./meshd") of the module at root as
// a static linux binary for arch into out, reproducibly: no cgo, trimmed
// paths, no VCS stamp, no build id. ldflags are added to "-s -w
// -buildid=".
func GoBuild(root, pkg, arch, out, ldflags string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid= "+ldflags, "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s: %w\n%s", pkg, arch, err, stderr.Bytes())
	}
	return nil
}

// VersionVar is the variable the binaries' "version" command prints,
// stamped with the image's version.
const VersionVar = "github.com/postern/postern/pkg/cli.version"

// BuildFromSource builds spec's binaries from package pkg of the module at
// root (into tmp), stamped with spec.Version (VersionVar), then the image
// index.
func BuildFromSource(root, pkg, tmp string, spec Spec, ldflags string) (v1.ImageIndex, error) {
	if spec.Version != "" {
		if strings.ContainsFunc(spec.Version, func(r rune) bool { return r <= ' ' || r == '\'' || r == '"' || r == '\\' }) {
			return nil, fmt.Errorf("image: version %q: no spaces, quotes or control characters", spec.Version)
		}
		ldflags = strings.TrimSpace(ldflags + " -X " + VersionVar + "=" + spec.Version)
	}
	spec.Binaries = map[string]string{}
	for _, arch := range Arches {
		out := filepath.Join(tmp, spec.Name+"-"+arch)
		if err := GoBuild(root, pkg, arch, out, ldflags); err != nil {
			return nil, err
		}
		spec.Binaries[arch] = out
	}
	return Build(spec)
}

// WriteLayout writes idx as an OCI image layout in dir (replacing it):
// push it with any OCI tool, such as "crane push" or "skopeo copy
// oci:DIR docker://REPO:TAG".
func WriteLayout(dir string, idx v1.ImageIndex) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	_, err := layout.Write(dir, idx)
	return err
}
