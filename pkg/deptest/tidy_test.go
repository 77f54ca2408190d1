package deptest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestGoModTidy fails when `go mod tidy` would change go.mod or go.sum.
// It uses -diff, which changes nothing and exits non-zero with the diff;
// the files are compared before and after to be sure of that.
func TestGoModTidy(t *testing.T) {
	root := moduleRoot(t)
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
