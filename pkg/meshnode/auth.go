package meshnode

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/postern/postern/pkg/appreq"
	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/edge"
	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/wgkey"
)

// newAuthConfig builds the edge's pre-authentication settings: a verifier
// of app tokens against the auth functions' JWKS, a verified-token cache,
// and this node's own identity-assertion keys (kept in the state
// directory; backends verify them through /.postern/jwks.json), and the
// signer of the app requests that browsers carry to the auth functions
// (this node's node key and credential).
func newAuthConfig(cfg Config, nodeKey authority.Key, logger *slog.Logger) (*edge.AuthConfig, error) {
	if cfg.AuthURL == "" {
		return nil, nil
	}
	base := strings.TrimSuffix(cfg.AuthURL, "/")
	if !strings.HasPrefix(base, "https://") && !strings.HasPrefix(base, "http://") {
		return nil, fmt.Errorf("meshnode: auth URL %q: want https://host", cfg.AuthURL)
	}
	keys, err := loadOrCreateKeyset(filepath.Join(cfg.StateDir, "assertion-keys.json"))
	if err != nil {
		return nil, err
	}
	v := session.NewVerifier(session.VerifierConfig{JWKSURL: base + "/.well-known/jwks.json",
		HTTPClient: cfg.AuthHTTPClient, Issuer: base, Logger: logger})
	requests, err := appreq.NewSigner(appreq.SignerConfig{Credential: cfg.NodeCredential, Sign: nodeKey.Sign, Audience: base})
	if err != nil {
		return nil, fmt.Errorf("meshnode: %w", err)
	}
	return &edge.AuthConfig{AuthURL: base, Verifier: v, Requests: requests, Cache: session.NewCache(v, 100_000), Assertions: keys}, nil
}

func loadOrCreateKeyset(path string) (*session.Keyset, error) {
	ks, err := session.LoadKeyset(context.Background(), "file:"+path, nil)
	if err == nil {
		return ks, nil
	}
	if _, statErr := os.Stat(path); !errors.Is(statErr, fs.ErrNotExist) {
		return nil, fmt.Errorf("meshnode: assertion keys: %w", err)
	}
	if ks, err = session.GenerateKeyset(); err != nil {
		return nil, fmt.Errorf("meshnode: assertion keys: %w", err)
	}
	b, err := ks.Marshal()
	if err != nil {
		return nil, fmt.Errorf("meshnode: assertion keys: %w", err)
	}
	if err := wgkey.WriteFileAtomic(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("meshnode: assertion keys: %w", err)
	}
	return ks, nil
}
