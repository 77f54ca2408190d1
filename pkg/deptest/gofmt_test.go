package deptest

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestGofmt fails when any .go file of the module is not gofmt-formatted.
func TestGofmt(t *testing.T) {
	root := moduleRoot(t)
	files, err := goFiles(root)
	if err != nil {
		t.Fatalf("list go files: %v", err)
	}
	if len(files) == 0 {
		t.Fatalf("found no .go files under %s", root)
	}
	bad, err := unformatted(t, files)
	if err != nil {
		t.Fatalf("gofmt: %v", err)
	}
	for i, f := range bad {
		if rel, err := filepath.Rel(root, f); err == nil {
			bad[i] = rel
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d file(s) not gofmt-formatted (run gofmt -w):\n\t%s", len(bad), strings.Join(bad, "\n\t"))
	}
}

// TestUnformattedDetects checks that the gofmt check can fail.
func TestUnformattedDetects(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.go")
	bad := filepath.Join(dir, "bad.go")
	writeFile(t, good, "package x\n\nfunc F() int { return 1 }\n")
	writeFile(t, bad, "package x\nfunc  F( ) int {return 1}\n")
	got, err := unformatted(t, []string{good, bad})
	if err != nil {
		t.Fatalf("unformatted: %v", err)
	}
	if want := []string{bad}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestGoFilesSkips checks which directories the gofmt walk leaves out.
func TestGoFilesSkips(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{
		"a.go", "pkg/b.go", "pkg/c.txt",
		"pkg/testdata/bad.go", ".hidden/d.go", "_scratch/e.go", "vendor/f.go",
		"nested/go.mod", "nested/g.go",
	} {
		writeFile(t, filepath.Join(root, name), "package x\n")
	}
	got, err := goFiles(root)
	if err != nil {
		t.Fatalf("goFiles: %v", err)
	}
	want := []string{filepath.Join(root, "a.go"), filepath.Join(root, "pkg", "b.go")}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// goFiles returns the .go files of the module rooted at root, skipping the
// directories the go command ignores (testdata, vendor, names starting with
// "." or "_") and nested modules.
func goFiles(root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return fs.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return fs.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") && !strings.HasPrefix(name, ".") && d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	slices.Sort(files)
	return files, err
}

// unformatted runs the toolchain's gofmt -l over files and returns the ones
// it would change.
func unformatted(tb testing.TB, files []string) ([]string, error) {
	tb.Helper()
	out, err := goCommand(tb.Context(), "", nil, "env", "GOROOT")
	if err != nil {
		return nil, err
	}
	gofmt := filepath.Join(strings.TrimSpace(string(out)), "bin", "gofmt")
	cmd := exec.CommandContext(tb.Context(), gofmt, append([]string{"-l"}, files...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		return nil, &commandError{args: []string{gofmt, "-l", "..."}, err: err, stderr: stderr.String()}
	}
	return strings.Fields(string(stdout)), nil
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}
