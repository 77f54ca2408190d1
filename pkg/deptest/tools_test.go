package deptest

import (
	"slices"
	"strings"
	"testing"
)

// maxToolModules bounds the modules whose packages the task runner links
// (tools/go.mod). A cold first "go tool -modfile=tools/go.mod task demo"
// compiles them all before the demo: go-task v3.39.2 links 26 modules
// (68 packages outside the standard library), v3.54 about 115 (890 packages: cloud SDKs, gRPC,
// OpenTelemetry), which took most of a 34-minute first run on 2 cores.
const maxToolModules = 30

// TestToolsModuleSmall fails when the task runner's module graph grows
// past maxToolModules, so that an upgrade that would slow every cold start
// is a decision rather than an accident.
func TestToolsModuleSmall(t *testing.T) {
	root := moduleRoot(t)
	out, err := goCommand(t.Context(), root, nil, "list", "-modfile=tools/go.mod", "-deps",
		"-f", "{{with .Module}}{{.Path}}{{end}}", "github.com/go-task/task/v3/cmd/task")
	if err != nil {
		t.Fatalf("go list the task runner's dependencies: %v", err)
	}
	mods := slices.Compact(slices.Sorted(slices.Values(strings.Fields(string(out)))))
	if len(mods) < 2 {
		t.Fatalf("tools/go.mod lists %d modules: the count is broken", len(mods))
	}
	if len(mods) > maxToolModules {
		t.Errorf("the task runner links %d modules, more than %d: a cold first run compiles all of them before the demo starts (README, first run); pin a smaller go-task or raise the bound with a measured cold start", len(mods), maxToolModules)
	}
}

// TestToolsModuleTidy fails when go mod tidy would change tools/go.mod
// (the task runner) or tools/lint/go.mod (staticcheck).
func TestToolsModuleTidy(t *testing.T) {
	root := moduleRoot(t)
	for _, dir := range []string{"tools", "tools/lint"} {
		out, err := goCommand(t.Context(), root+"/"+dir, nil, "mod", "tidy", "-diff")
		if err != nil {
			t.Errorf("go mod tidy would change %s/go.mod (run it in %s/):\n%s\n%v", dir, dir, out, err)
		}
	}
}
