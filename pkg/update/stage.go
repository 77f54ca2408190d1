package update

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Config configures an [Updater].
type Config struct {
	// ManifestURL is the signed manifest of the channel followed
	// (required).
	ManifestURL string
	// Keys are the pinned release keys (required).
	Keys []ed25519.PublicKey
	// Product is the binary's name in manifests, such as "connectord"
	// (required).
	Product string
	// Current is the running version (required).
	Current string
	// Platform is "GOOS/GOARCH" (required).
	Platform string
	// Dir is where binaries and the launch state live, such as
	// <state>/update (required).
	Dir string
	// HTTPClient downloads; nil means a client with a 5-minute timeout.
	HTTPClient *http.Client
}

// Updater checks for releases and stages them. It is safe for concurrent
// use.
type Updater struct {
	cfg Config
}

// New checks cfg and returns an Updater.
func New(cfg Config) (*Updater, error) {
	if cfg.ManifestURL == "" || len(cfg.Keys) == 0 || cfg.Product == "" || cfg.Current == "" || cfg.Platform == "" || cfg.Dir == "" {
		return nil, fmt.Errorf("update: ManifestURL, Keys, Product, Current, Platform and Dir are required")
	}
	if !ValidVersion(cfg.Current) {
		return nil, fmt.Errorf("update: the running version %q is no release version (a build without -X github.com/postern/postern/pkg/cli.version)", cfg.Current)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Minute}
	}
	return &Updater{cfg: cfg}, nil
}

// Check fetches and verifies the manifest and returns it when it offers a
// version newer than the running one, not marked bad, for this platform;
// otherwise nil.
func (u *Updater) Check(ctx context.Context) (*Manifest, error) {
	b, err := u.get(ctx, u.cfg.ManifestURL, maxManifest)
	if err != nil {
		return nil, err
	}
	m, err := Verify(b, u.cfg.Keys)
	if err != nil {
		return nil, err
	}
	if m.Product != u.cfg.Product {
		return nil, fmt.Errorf("update: %w: the manifest is for %s", ErrMalformed, m.Product)
	}
	if _, ok := m.Artifacts[u.cfg.Platform]; !ok || Compare(m.Version, u.cfg.Current) <= 0 {
		return nil, nil
	}
	st, err := loadState(u.cfg.Dir)
	if err != nil {
		return nil, err
	}
	if st.isBad(m.Version) {
		return nil, nil
	}
	return m, nil
}

// Stage downloads m's binary for this platform, checks it against the
// manifest, writes it into Dir (0755) and records it as the version to run
// on trial at the next start. Nothing is recorded when a check fails.
func (u *Updater) Stage(ctx context.Context, m *Manifest) error {
	a := m.Artifacts[u.cfg.Platform]
	b, err := u.get(ctx, a.URL, a.Size)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	if int64(len(b)) != a.Size || hex.EncodeToString(sum[:]) != a.SHA256 {
		return fmt.Errorf("update: %s %s: %w (sha256 or size)", m.Product, m.Version, ErrArtifact)
	}
	if err := os.MkdirAll(u.cfg.Dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(u.cfg.Dir, u.cfg.Product+"-"+m.Version)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		return fmt.Errorf("update: stage: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("update: stage: %w", err)
	}
	return updateState(u.cfg.Dir, func(s *state) {
		s.Trial = &binary{Version: m.Version, Path: path, SHA256: a.SHA256}
	})
}

func (u *Updater) get(ctx context.Context, url string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	resp, err := u.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("update: get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("update: get %s: status %d", url, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("update: get %s: %w", url, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("update: get %s: %w: larger than %d bytes", url, ErrArtifact, limit)
	}
	return b, nil
}
