package deptest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// maxTrackedBytes bounds a file kept in the repository: sources, docs,
// fixtures and fuzz corpora are far smaller, build outputs far larger.
const maxTrackedBytes = 1 << 20

// TestNoBuildOutputsTracked: no file git tracks is a build output or
// larger than maxTrackedBytes (binaries were committed by mistake twice).
func TestNoBuildOutputsTracked(t *testing.T) {
	root := moduleRoot(t)
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files (this test needs git and a checkout): %v", err)
	}
	if msg := bigFiles(root, strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")); msg != "" {
		t.Fatal(msg)
	}
}

// bigFiles returns a message naming the files of names (relative to
// root) that are executables or larger than maxTrackedBytes, or "".
func bigFiles(root string, names []string) string {
	var bad []string
	for _, name := range names {
		if name == "" {
			continue
		}
		p := filepath.Join(root, name)
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or a link
		}
		if fi.Size() > maxTrackedBytes || isBinaryExecutable(p) {
			bad = append(bad, fmt.Sprintf("%s (%d bytes)", name, fi.Size()))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return "build outputs or oversized files are tracked; remove them (git rm --cached) and add them to .gitignore:\n  " + strings.Join(bad, "\n  ")
}

// isBinaryExecutable reports whether the file at p starts like an ELF,
// Mach-O or PE executable.
func isBinaryExecutable(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 4)
	if n, _ := f.Read(head); n < 4 {
		return false
	}
	for _, magic := range [][]byte{{0x7f, 'E', 'L', 'F'}, {0xcf, 0xfa, 0xed, 0xfe}, {0xfe, 0xed, 0xfa, 0xcf}, {'M', 'Z', 0x90, 0x00}} {
		if bytes.Equal(head, magic) {
			return true
		}
	}
	return false
}

// TestBigFilesDetects: the check names an executable and an oversized
// file, and passes small text.
func TestBigFilesDetects(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "small.go"), []byte("package x\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "meshd"), append([]byte{0x7f, 'E', 'L', 'F'}, make([]byte, 100)...), 0o755)
	os.WriteFile(filepath.Join(dir, "huge.json"), make([]byte, maxTrackedBytes+1), 0o644)
	if msg := bigFiles(dir, []string{"small.go"}); msg != "" {
		t.Fatalf("small text refused: %s", msg)
	}
	msg := bigFiles(dir, []string{"small.go", "meshd", "huge.json", "gone"})
	if !strings.Contains(msg, "meshd (104 bytes)") || !strings.Contains(msg, "huge.json") || strings.Contains(msg, "small.go") {
		t.Fatalf("got %q", msg)
	}
}
