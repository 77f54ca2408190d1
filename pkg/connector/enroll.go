package connector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/wgkey"
)

// EnrollConfig configures Enroll.
type EnrollConfig struct {
	// StateDir receives the key and the state. Required.
	StateDir string
	// MeshURL is the HTTPS base URL of any mesh node. Required.
	MeshURL string
	// Token is the one-time enrolment token. Required.
	Token string
	// Name is a human name for the connector; empty means the host name.
	Name string
	// HTTPClient talks to the mesh; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Enroll generates the connector's WireGuard key locally (reusing one that
// exists), exchanges the token and the public key for a credential, and
// writes the state. The private key never leaves the host.
func Enroll(ctx context.Context, cfg EnrollConfig) (*State, error) {
	if cfg.Token == "" {
		return nil, fmt.Errorf("connector: enroll: no token given")
	}
	if err := checkMeshURL(cfg.MeshURL); err != nil {
		return nil, fmt.Errorf("connector: enroll: %w", err)
	}
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("connector: enroll: %w", err)
	}
	key, err := wgkey.LoadOrCreate(filepath.Join(cfg.StateDir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("connector: enroll: %w", err)
	}
	cl := &enroll.Client{BaseURL: cfg.MeshURL, HTTPClient: cfg.HTTPClient}
	resp, err := cl.Enroll(ctx, cfg.Token, key, cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("connector: %w", withTLSHint(err))
	}
	s := &State{MeshURLs: []string{cfg.MeshURL}, ConnectorID: resp.ConnectorID, Group: resp.Group,
		Credential: resp.Credential, CredentialIssued: cfg.Now(), CredentialExpires: resp.Expires}
	if err := s.Save(cfg.StateDir); err != nil {
		return nil, err
	}
	return s, nil
}

func checkMeshURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("mesh URL %q: want https://host[:port]", s)
	}
	return nil
}

// EnrollOnce enrols with the token that token returns only when cfg's
// state directory holds no enrolment yet (a container's first start): it
// returns the state and whether it enrolled. token is not called when the
// connector is enrolled already, so the token may be gone by then.
func EnrollOnce(ctx context.Context, cfg EnrollConfig, token func() (string, error)) (*State, bool, error) {
	s, err := LoadState(cfg.StateDir)
	if err == nil {
		return s, false, nil
	}
	if !errors.Is(err, ErrNotEnrolled) {
		return nil, false, err
	}
	if cfg.Token, err = token(); err != nil {
		return nil, false, err
	}
	s, err = Enroll(ctx, cfg)
	return s, err == nil, err
}
