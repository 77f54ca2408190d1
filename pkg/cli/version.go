package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
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

// NewRegistry returns a metrics registry holding postern_build_info for
// this binary, for a daemon's main to hand to the component it runs.
func NewRegistry(component string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(ReadBuildInfo().collector(component))
	return reg
}

// collector is the constant gauge postern_build_info, always 1, whose
// labels say which build is running.
func (b BuildInfo) collector(component string) prometheus.Collector {
	revision := b.Revision
	if b.Modified {
		revision += "+modified"
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "postern_build_info",
		Help:        "Always 1; the labels name the running build (component, version, VCS revision, Go version).",
		ConstLabels: prometheus.Labels{"component": component, "version": b.Version, "revision": revision, "goversion": b.GoVersion},
	}, func() float64 { return 1 })
}
