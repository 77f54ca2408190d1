package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is the release version, set by the package and release builds
// with -ldflags "-X github.com/postern/postern/pkg/cli.version=1.2.3".
// Empty means the module version from the build information, if any.
var version string

// revision is the VCS commit, set by the same builds with
// -X github.com/postern/postern/pkg/cli.revision=$(git rev-parse HEAD) for
// binaries built without VCS stamping (-buildvcs=false); the build
// information's vcs.revision wins when there is one.
var revision string

// BuildInfo is what a binary knows about its own build.
type BuildInfo struct {
	// Version is the release version, or "devel" for a build from a work
	// tree without one.
	Version string
	// Revision is the VCS commit, "" when the build recorded none (built
	// with -buildvcs=false or outside a repository).
	Revision string
	// Modified reports uncommitted changes in the build's work tree.
	Modified bool
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string
}

// ReadBuildInfo returns the running binary's build information.
func ReadBuildInfo() BuildInfo {
	bi := BuildInfo{Version: version, Revision: revision, GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if ok {
		if bi.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			bi.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				bi.Revision = s.Value
			case "vcs.modified":
				bi.Modified = s.Value == "true"
			}
		}
	}
	if bi.Version == "" {
		bi.Version = "devel"
	}
	return bi
}

// VersionLine is what "NAME version" prints: the version, the VCS
// revision (or why there is none) and the Go version and platform.
func VersionLine(name string) string {
	return ReadBuildInfo().line(name)
}

func (b BuildInfo) line(name string) string {
	rev := "revision unknown (built without VCS information)"
	if b.Revision != "" {
		rev = "revision " + b.Revision
		if b.Modified {
			rev += " (modified)"
		}
	}
	return fmt.Sprintf("%s %s, %s, %s %s/%s", name, b.Version, rev, b.GoVersion, runtime.GOOS, runtime.GOARCH)
}
