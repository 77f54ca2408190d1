package connector

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/postern/postern/pkg/wgkey"
)

// MeshCAFile is the file in the state directory that holds the extra CA
// (PEM) enrolment was told to trust for the mesh's certificate; "connectord
// run" trusts it too, so the run command needs no --mesh-ca of its own.
const MeshCAFile = "mesh-ca.pem"

// SaveMeshCA keeps pem, the CA certificates given at enrolment, in
// stateDir (0600, replacing an older copy).
func SaveMeshCA(stateDir string, pem []byte) error {
	if err := wgkey.WriteFileAtomic(filepath.Join(stateDir, MeshCAFile), pem, 0o600); err != nil {
		return fmt.Errorf("connector: save mesh CA: %w", err)
	}
	return nil
}

// LoadMeshCA returns the CA certificates SaveMeshCA kept in stateDir, or
// nil when there are none.
func LoadMeshCA(stateDir string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, MeshCAFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("connector: load mesh CA: %w", err)
	}
	return b, nil
}

// TLSHint returns a sentence saying how to fix err when it is a failure to
// verify the mesh's certificate (or to speak TLS to it), naming the flag
// that fixes it; "" for any other error.
func TLSHint(err error) string {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var notTLS tls.RecordHeaderError
	switch {
	case errors.As(err, &unknown):
		return "the mesh's certificate is signed by a CA this host does not trust: pass --mesh-ca FILE (the CA's PEM certificate) to \"connectord enroll\"; \"connectord run\" then trusts it too"
	case errors.As(err, &host):
		return "the mesh's certificate does not name the host in the URL: give --mesh the name the certificate was issued for"
	case errors.As(err, &invalid):
		return "the mesh's certificate is not valid now (expired, not yet valid, or not for a server): check this host's clock and the mesh's certificate"
	case errors.As(err, &notTLS), err != nil && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "the mesh does not speak TLS at that address: check the port in --mesh (the mesh node's public HTTPS address)"
	}
	return ""
}

// withTLSHint appends TLSHint's advice to err, if it has any.
func withTLSHint(err error) error {
	if hint := TLSHint(err); hint != "" {
		return fmt.Errorf("%w (%s)", err, hint)
	}
	return err
}
