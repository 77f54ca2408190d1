package deptest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// depRule is a trust boundary written as an import rule: the packages
// matched by Pattern, built for each of GOOS, must not depend on any
// package under Deny.
type depRule struct {
	// Name labels the rule in test names and messages.
	Name string
	// Pattern is a go list package pattern relative to the module root,
	// such as "./connectord" or "./functions/..."; several are separated
	// by spaces.
	Pattern string
	// Dir is the directory, relative to the module root, whose Go files the
	// pattern covers. While it holds no Go files the rule is logged as not
	// yet checked instead of failing.
	Dir string
	// GOOS lists the target systems to check. Empty means linux only.
	GOOS []string
	// Deny lists import paths; each denies itself and every package below
	// it (a module path denies the whole module).
	Deny []string
	// Why says what secret or role the boundary protects.
	Why string
}

// Import paths named by more than one rule.
const (
	wireguard  = "golang.zx2c4.com/wireguard"
	gvisor     = "gvisor.dev/gvisor"
	memberlist = "github.com/hashicorp/memberlist"
	goOIDC     = "github.com/coreos/go-oidc"
	zitadel    = "github.com/zitadel/oidc"
	module     = "github.com/postern/postern"
	session    = module + "/pkg/session"
	mint       = module + "/pkg/session/mint"
	gossip     = "github.com/postern/postern/pkg/gossip"
	grpc       = "google.golang.org/grpc"
)

// devOnly are the packages of the demo, the tests and the benchmarks: the
// development identity provider (and the OIDC provider library it is built
// on), the sample app, the simulated network, the in-process harness, the
// benchmark runner, the demo and the test OTLP receiver. No production binary links them.
var devOnly = []string{
	module + "/pkg/devidp", zitadel, module + "/pkg/sampleapp", module + "/pkg/simnet",
	module + "/pkg/harness", module + "/pkg/benchrun", module + "/pkg/demo", module + "/pkg/tracing/tracingtest",
}

// depRules returns the trust boundaries of the module. Add a row to add a
// boundary.
func depRules() []depRule {
	return []depRule{
		{
			Name:    "functions",
			Pattern: "./functions/...",
			Dir:     "functions",
			GOOS:    []string{"linux"},
			Deny:    []string{wireguard, gvisor, memberlist, module + "/pkg/authority", module + "/pkg/enroll", module + "/pkg/devidp"},
			Why:     "the auth functions hold the session signing key and the OIDC client secret; they must not link the data plane, the gossip, the mesh authority or the development provider",
		},
		{
			Name:    "binaries-without-build-tools",
			Pattern: "./meshd/... ./connectord/... ./functions/...",
			Dir:     "meshd",
			GOOS:    []string{"linux"},
			Deny:    []string{"helm.sh/helm", "k8s.io", "sigs.k8s.io", "github.com/google/go-containerregistry", "github.com/letsencrypt/pebble", module + "/infra/build"},
			Why:     "the build tools' libraries (Helm, the Kubernetes API, go-containerregistry, Pebble) live in the infra/build module; the product links none of them, for a small module graph and a fast cold start",
		},
		{
			Name:    "edge",
			Pattern: "./pkg/edge",
			Dir:     "pkg/edge",
			Deny:    []string{module + "/pkg/pool", module + "/pkg/meshnode", module + "/pkg/route", gossip},
			Why:     "the edge proxy sends each attempt along the edge.Path its Router picks (a local connector or a relay through another node); the mesh node owns the pool, the relay paths and the route choice behind that interface",
		},
		{
			Name:    "connectord",
			Pattern: "./connectord",
			Dir:     "connectord",
			GOOS:    []string{"linux", "windows"},
			Deny:    append([]string{memberlist, goOIDC, session, gossip, module + "/pkg/authfn"}, devOnly...),
			Why:     "the connector runs on internal hosts and must hold no gossip keyring, session-signing or OIDC code, and no development or test code",
		},
		{
			Name:    "binaries-without-grpc",
			Pattern: "./meshd ./connectord",
			Dir:     "meshd",
			GOOS:    []string{"linux", "windows"},
			Deny:    []string{grpc},
			Why:     "tracing exports over OTLP/HTTP with pkg/tracing's own exporter; the OpenTelemetry exporter and the OTLP collector service package link gRPC, 5 MB in each binary for a protocol Postern does not speak",
		},
		{
			Name:    "meshd",
			Pattern: "./meshd",
			Dir:     "meshd",
			GOOS:    []string{"linux", "windows"},
			Deny:    append([]string{mint, module + "/pkg/authfn", goOIDC}, devOnly...),
			Why:     "mesh nodes only verify sessions (the session-signing key stays with the auth functions) and the production binary carries no development or test code (the demo is meshd/demo)",
		},
	}
}

// TestTrustBoundaries checks every rule of depRules.
func TestTrustBoundaries(t *testing.T) {
	root := moduleRoot(t)
	for _, rule := range depRules() {
		goos := rule.GOOS
		if len(goos) == 0 {
			goos = []string{"linux"}
		}
		for _, goos := range goos {
			t.Run(rule.Name+"/"+goos, func(t *testing.T) {
				has, err := hasGoFiles(filepath.Join(root, rule.Dir))
				if err != nil {
					t.Fatalf("look for Go files: %v", err)
				}
				if !has {
					t.Logf("NOT CHECKED: %s holds no Go files yet; rule %q (%s) applies once it does", rule.Dir, rule.Name, rule.Why)
					return
				}
				violations, err := checkDeps(t, root, rule.Pattern, goos, rule.Deny)
				if err != nil {
					t.Fatalf("go list %s for GOOS=%s: %v", rule.Pattern, goos, err)
				}
				for _, v := range violations {
					t.Errorf("%s (GOOS=%s) depends on %s, which it must not (%s):\n\t%s",
						rule.Pattern, goos, v.denied, rule.Why, strings.Join(v.chain, "\n\t-> "))
				}
			})
		}
	}
}

// TestCheckDepsDetects checks that the rule checker can fail: the WireGuard
// node package does link WireGuard and gVisor, the key package does not.
func TestCheckDepsDetects(t *testing.T) {
	root := moduleRoot(t)
	tests := []struct {
		pattern string
		deny    []string
		want    []string
	}{
		{"./pkg/wgnet", []string{wireguard, gvisor, memberlist}, []string{wireguard, gvisor}},
		{"./pkg/wgkey", []string{wireguard, gvisor, memberlist}, nil},
		// The demo command links what meshd must not.
		{"./meshd/demo", []string{mint, module + "/pkg/harness", zitadel}, []string{mint, module + "/pkg/harness", zitadel}},
		// The test receiver decodes with the collector's service package,
		// which links gRPC; the exporter does not.
		{"./pkg/tracing/tracingtest", []string{grpc}, []string{grpc}},
		{"./pkg/tracing", []string{grpc}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			violations, err := checkDeps(t, root, tt.pattern, "linux", tt.deny)
			if err != nil {
				t.Fatalf("checkDeps: %v", err)
			}
			var got []string
			for _, v := range violations {
				got = append(got, v.denied)
				root := "github.com/postern/postern/" + strings.TrimPrefix(tt.pattern, "./")
				if len(v.chain) < 2 || v.chain[0] != root || !underPath(v.chain[len(v.chain)-1], v.denied) {
					t.Errorf("chain for %s: got %v, want one from %s to a package under %s", v.denied, v.chain, root, v.denied)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("denied: got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUnderPath(t *testing.T) {
	tests := []struct {
		pkg, prefix string
		want        bool
	}{
		{"golang.zx2c4.com/wireguard", wireguard, true},
		{"golang.zx2c4.com/wireguard/device", wireguard, true},
		{"golang.zx2c4.com/wireguardx", wireguard, false},
		{"golang.zx2c4.com/wintun", wireguard, false},
		{"github.com/coreos/go-oidc/v3/oidc", goOIDC, true},
		{"github.com/postern/postern/pkg/sessionstore", session, false},
		{"github.com/postern/postern/pkg/session/keys", session, true},
	}
	for _, tt := range tests {
		t.Run(tt.pkg+"~"+tt.prefix, func(t *testing.T) {
			if got := underPath(tt.pkg, tt.prefix); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// violation is one denied dependency and the shortest import chain from a
// checked package to it.
type violation struct {
	denied string
	chain  []string
}

// listedPackage is the part of `go list -json` output checkDeps reads.
type listedPackage struct {
	ImportPath string
	Imports    []string
	DepOnly    bool
}

// checkDeps lists the dependencies of pattern built for goos and returns,
// for each deny entry in order, the first denied package reached (by the
// shortest import chain), if any.
func checkDeps(tb testing.TB, root, pattern, goos string, deny []string) ([]violation, error) {
	tb.Helper()
	out, err := goCommand(tb.Context(), root, []string{"GOOS=" + goos, "GOARCH=amd64", "CGO_ENABLED=0"},
		append([]string{"list", "-deps", "-json=ImportPath,Imports,DepOnly"}, strings.Fields(pattern)...)...)
	if err != nil {
		return nil, err
	}
	imports := make(map[string][]string)
	var roots []string
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decode go list output: %w", err)
		}
		imports[p.ImportPath] = p.Imports
		if !p.DepOnly {
			roots = append(roots, p.ImportPath)
		}
	}
	if len(roots) == 0 {
		return nil, fmt.Errorf("pattern %s matched no packages", pattern)
	}
	chains := shortestChains(roots, imports)
	var violations []violation
	for _, d := range deny {
		var best []string
		for pkg, chain := range chains {
			if !underPath(pkg, d) {
				continue
			}
			if best == nil || len(chain) < len(best) || len(chain) == len(best) && pkg < best[len(best)-1] {
				best = chain
			}
		}
		if best != nil {
			violations = append(violations, violation{denied: d, chain: best})
		}
	}
	return violations, nil
}

// shortestChains returns, for every package reachable from roots, a
// shortest import chain from a root to it (breadth-first search).
func shortestChains(roots []string, imports map[string][]string) map[string][]string {
	chains := make(map[string][]string)
	queue := slices.Clone(roots)
	slices.Sort(queue)
	for _, r := range queue {
		chains[r] = []string{r}
	}
	for len(queue) > 0 {
		pkg := queue[0]
		queue = queue[1:]
		for _, imp := range imports[pkg] {
			if _, seen := chains[imp]; seen {
				continue
			}
			chains[imp] = append(slices.Clone(chains[pkg]), imp)
			queue = append(queue, imp)
		}
	}
	return chains
}

// underPath reports whether the import path pkg is prefix or below it.
func underPath(pkg, prefix string) bool {
	return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}

// hasGoFiles reports whether dir or any directory below it (excluding
// testdata) holds a non-test .go file. A missing dir holds none.
func hasGoFiles(dir string) (bool, error) {
	found := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "testdata" {
				return fs.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".go") && !strings.HasSuffix(d.Name(), "_test.go") {
			found = true
			return fs.SkipAll
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return found, err
}
