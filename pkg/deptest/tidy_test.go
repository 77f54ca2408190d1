package deptest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// separateModules are the repository's other Go modules (relative to the
// main module's root), which hold what the product must not link (Helm,
// the Kubernetes API, go-containerregistry): each must be tidy too.
var separateModules = []string{"infra/build"}

// TestGoModTidy fails when `go mod tidy` would change go.mod or go.sum of
// the main module or of a separate module. It uses -diff, which changes
// nothing and exits non-zero with the diff; the files are compared before
// and after to be sure of that.
func TestGoModTidy(t *testing.T) {
	root := moduleRoot(t)
	checkTidy(t, root)
	for _, m := range separateModules {
		t.Run(m, func(t *testing.T) { checkTidy(t, filepath.Join(root, m)) })
	}
}

func checkTidy(t *testing.T, root string) {
	t.Helper()
	before := readModFiles(t, root)
	out, err := goCommand(t.Context(), root, nil, "mod", "tidy", "-diff")
	if err != nil {
		if len(out) > 0 && exitedNonZero(err) {
			t.Errorf("go mod tidy would change go.mod/go.sum; run go mod tidy:\n%s", out)
		} else {
			t.Errorf("go mod tidy -diff failed: %v", err)
		}
	}
	after := readModFiles(t, root)
	for name := range before {
		if !bytes.Equal(before[name], after[name]) {
			t.Errorf("%s changed while running go mod tidy -diff", name)
		}
	}
}

// readModFiles returns the contents of go.mod and go.sum (nil if absent).
func readModFiles(tb testing.TB, root string) map[string][]byte {
	tb.Helper()
	files := make(map[string][]byte)
	for _, name := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil && !os.IsNotExist(err) {
			tb.Fatalf("read %s: %v", name, err)
		}
		files[name] = b
	}
	return files
}
