package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenAudit checks that --audit-log appends JSON records to a file
// created 0600, and that a directory that does not exist is an error
// naming the flag.
func TestOpenAudit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte("{\"earlier\":1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		l, closeFn, err := openAudit(path)
		if err != nil {
			t.Fatal(err)
		}
		l.Info("access_decision", "n", i)
		if err := closeFn(); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 || lines[0] != `{"earlier":1}` || !strings.Contains(lines[2], `"msg":"access_decision","n":1`) {
		t.Fatalf("file holds %q, want the earlier line and two appended records", lines)
	}
	fresh := filepath.Join(t.TempDir(), "new.log")
	_, closeFn, err := openAudit(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new audit file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if _, _, err := openAudit(filepath.Join(t.TempDir(), "missing", "audit.log")); err == nil || !strings.Contains(err.Error(), "--audit-log") {
		t.Fatalf("got %v, want an error naming --audit-log", err)
	}
	if l, closeFn, err := openAudit(""); err != nil || l != nil {
		t.Fatalf("empty --audit-log: %v, %v; want no stream", l, err)
	} else {
		if err := closeFn(); err != nil {
			t.Fatal(err)
		}
	}
}
