package wgkey

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LoadOrCreate reads the private key at path, or generates one and writes it
// there (mode 0600, atomically) when the file does not exist.
func LoadOrCreate(path string) (Private, error) {
	k, err := Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if k, err = Generate(); err != nil {
		return Private{}, err
	}
	if err := Save(path, k); err != nil {
		return Private{}, err
	}
	return k, nil
}

// Load reads a base64 private key from path. It refuses a file that group or
// others may read.
func Load(path string) (Private, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Private{}, fmt.Errorf("wgkey: load %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return Private{}, fmt.Errorf("wgkey: load %s: mode %v is too open, want 0600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Private{}, fmt.Errorf("wgkey: load %s: %w", path, err)
	}
	k, err := ParsePrivate(strings.TrimSpace(string(b)))
	if err != nil {
		return Private{}, fmt.Errorf("wgkey: load %s: %w", path, err)
	}
	return k, nil
}

// Save writes k to path in base64, mode 0600, atomically.
func Save(path string, k Private) error {
	return WriteFileAtomic(path, []byte(k.base64()+"\n"), 0o600)
}

// WriteFileAtomic writes data to a temporary file in the same directory with
// the given mode, syncs it and renames it over path, so readers see either
// the old or the new content, never a mix.
func WriteFileAtomic(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(mode); err != nil {
		_ = f.Close() // the error above is the one to report
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close() // the error above is the one to report
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the error above is the one to report
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
