package connector

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
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
	// Token is the one-time enrolment token, or with Group the workload
	// identity token. Required.
	Token string
	// Group, if set, makes Token a workload identity token (a Kubernetes
	// projected ServiceAccount token) to enrol in this connector group,
	// whose workload_enrollment must accept it; empty means Token is a
	// one-time token, which names its own group.
	Group string
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
	enrol := cl.Enroll
	if cfg.Group != "" {
		enrol = func(ctx context.Context, token string, key wgkey.Private, name string) (enroll.EnrollResponse, error) {
			return cl.EnrollWorkload(ctx, token, cfg.Group, key, name)
		}
	}
	resp, err := enrol(ctx, cfg.Token, key, cfg.Name)
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
// connector is enrolled already, so the token may be gone by then. With a
// workload token (cfg.Group set) it also enrols again, with the same key,
// when the stored credential has expired or expires within a minute (a pod
// whose connector could not renew): token is called at each enrolment, so
// a token file the kubelet rotates is read afresh.
func EnrollOnce(ctx context.Context, cfg EnrollConfig, token func() (string, error)) (*State, bool, error) {
	s, err := LoadState(cfg.StateDir)
	now := time.Now
	if cfg.Now != nil {
		now = cfg.Now
	}
	if err == nil && (cfg.Group == "" || s.CredentialExpires.After(now().Add(time.Minute))) {
		return s, false, nil
	}
	if err != nil && !errors.Is(err, ErrNotEnrolled) {
		return nil, false, err
	}
	if cfg.Token, err = token(); err != nil {
		return nil, false, err
	}
	s, err = Enroll(ctx, cfg)
	return s, err == nil, err
}

// Forget removes the connector's key and state from dir, so that the next
// start enrols as a new connector (after Leave). Files already gone are
// no error.
func Forget(dir string) error {
	var errs []error
	for _, f := range []string{stateFile, keyFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("connector: forget: %w", err)
	}
	return nil
}
