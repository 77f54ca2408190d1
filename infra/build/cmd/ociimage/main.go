// Command ociimage builds the container images of meshd and connectord
// (linux/amd64 and linux/arm64, non-root, no shell) as OCI image layouts,
// without a container engine, and prints their digests:
//
//	go run ./cmd/ociimage -root ../.. -out ../../dist/images -version 0.1.0
//
// (task image does this from the repository root.)
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/postern/postern/infra/build/image"
)

func main() {
	root := flag.String("root", "../..", "root of the postern module (the repository)")
	out := flag.String("out", "dist/images", "directory for the OCI layouts (<out>/meshd, <out>/connectord)")
	version := flag.String("version", "0.0.0-dev", "version label of the images")
	flag.Parse()
	if err := run(*root, *out, *version); err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

func run(root, out, version string) error {
	created := time.Unix(0, 0)
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		created = time.Unix(n, 0)
	}
	tmp, err := os.MkdirTemp("", "ociimage")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, spec := range image.Postern() {
		spec.Version, spec.Created = version, created
		idx, err := image.BuildFromSource(root, "./"+spec.Name, tmp, spec, "")
		if err != nil {
			return err
		}
		if err := image.WriteLayout(filepath.Join(out, spec.Name), idx); err != nil {
			return err
		}
		d, err := idx.Digest()
		if err != nil {
			return err
		}
		fmt.Printf("%s %s\n", filepath.Join(out, spec.Name), d)
	}
	return nil
}
