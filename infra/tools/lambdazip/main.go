// Command lambdazip builds the auth function for AWS Lambda and writes its
// deployment package: a zip holding the "bootstrap" executable (mode
// 0755). The function holds no app catalogue: each sign-in link carries
// the app's requirements, signed by a mesh node. The same
// sources and Go toolchain give the same zip bytes: the build is trimmed
// and stripped with an empty build id, and every entry has a fixed
// timestamp and is written in name order.
//
//	go run ./infra/tools/lambdazip --o dist/auth-arm64.zip [--arch arm64]
package main

import (
	"archive/zip"
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"
)

// buildFlags are the go build flags of the function; see functions/README.md.
var buildFlags = []string{"-tags", "lambda.norpc", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="}

// epoch is every entry's modification time: the earliest a zip (MS-DOS)
// timestamp can hold.
var epoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

func main() {
	out := flag.String("o", "dist/auth-arm64.zip", "zip file to write")
	arch := flag.String("arch", "arm64", "GOARCH of the bootstrap (Lambda: arm64 or amd64)")
	pkg := flag.String("pkg", "./functions/auth", "package of the function")
	flag.Parse()
	if err := run(*out, *arch, *pkg); err != nil {
		fmt.Fprintln(os.Stderr, "lambdazip:", err)
		os.Exit(1)
	}
}

// entry is one file of the zip.
type entry struct {
	name string
	mode fs.FileMode
	data []byte
}

func run(out, arch, pkg string) error {
	tmp, err := os.MkdirTemp("", "lambdazip")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bootstrap")
	args := append(append([]string{"build"}, buildFlags...), "-o", bin, pkg)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0", "GOFLAGS=")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	entries := []entry{{name: "bootstrap", mode: 0o755, data: data}}
	z, err := zipBytes(entries)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := writeAtomic(out, z); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d bytes; bootstrap linux/%s)\n", out, len(z), arch)
	return nil
}

// zipBytes returns the zip of entries in name order with fixed metadata.
func zipBytes(entries []entry) ([]byte, error) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: epoch}
		h.SetMode(e.mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return nil, fmt.Errorf("zip %s: %w", e.name, err)
		}
		if _, err := w.Write(e.data); err != nil {
			return nil, fmt.Errorf("zip %s: %w", e.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("zip: %w", err)
	}
	return buf.Bytes(), nil
}

// writeAtomic writes data to path through a temporary file and a rename.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".lambdazip-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		_ = f.Close() // the error above is the one to report
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		_ = f.Close() // the error above is the one to report
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
