package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/gossip"
	"github.com/postern/postern/pkg/session"
)

// TestCompletesPartialSet runs keygen on a directory that holds two of the
// four secrets: it must create the other two, leave the existing ones
// byte for byte, write everything 0600, and a second run changes nothing.
func TestCompletesPartialSet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	var out, errOut bytes.Buffer
	if err := run(dir, &out, &errOut); err != nil {
		t.Fatalf("first run: %v", err)
	}
	first := readAll(t, dir)
	// Lose two files, as after an interrupted or partial first run.
	for _, name := range []string{"state-key", "gossip.keyring"} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	errOut.Reset()
	if err := run(dir, &out, &errOut); err != nil {
		t.Fatalf("completing run: %v", err)
	}
	second := readAll(t, dir)
	for _, name := range []string{"session-keys.json", "authority.key"} {
		if !bytes.Equal(first[name], second[name]) {
			t.Errorf("%s changed: an existing secret was overwritten", name)
		}
		if !strings.Contains(errOut.String(), "kept "+filepath.Join(dir, name)) {
			t.Errorf("no 'kept' line for %s in %q", name, errOut.String())
		}
	}
	for _, name := range []string{"state-key", "gossip.keyring"} {
		if len(second[name]) == 0 || bytes.Equal(first[name], second[name]) {
			t.Errorf("%s: not created anew", name)
		}
	}
	if err := run(dir, &out, &errOut); err != nil {
		t.Fatalf("third run: %v", err)
	}
	third := readAll(t, dir)
	for name := range second {
		if !bytes.Equal(second[name], third[name]) {
			t.Errorf("%s changed on a run with a complete set", name)
		}
	}
	// Every file is what its reader accepts.
	if _, err := authority.LoadKey(filepath.Join(dir, "authority.key")); err != nil {
		t.Errorf("authority.key: %v", err)
	}
	if _, err := gossip.LoadKeyring(filepath.Join(dir, "gossip.keyring")); err != nil {
		t.Errorf("gossip.keyring: %v", err)
	}
	if _, err := session.ParseKeyset(second["session-keys.json"]); err != nil {
		t.Errorf("session-keys.json: %v", err)
	}
	if strings.Contains(out.String()+errOut.String(), string(second["state-key"])) {
		t.Error("the state key was printed")
	}
}

// TestUncheckablePathFails: a path that cannot be checked (a file where the
// directory should be) is an error, not a silent skip.
func TestUncheckablePathFails(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, []byte("x"), 0o600)
	var out bytes.Buffer
	if err := run(f, &out, &out); err == nil {
		t.Fatal("got nil, want an error for a directory that is a file")
	}
}

func readAll(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, s := range secrets {
		p := filepath.Join(dir, s.name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read %s: %v", s.name, err)
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", s.name, fi.Mode().Perm())
		}
		m[s.name] = b
	}
	return m
}
