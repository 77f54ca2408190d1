package connector

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/postern/postern/pkg/wgkey"
)

// File names inside the state directory.
const (
	keyFile   = "wg.key"
	stateFile = "state.json"
)

// State is what enrolment leaves on the internal host. It is written 0600:
// the credential lets its holder attach as this connector (only together
// with the private key, which stays in its own file).
type State struct {
	// MeshURLs are the HTTPS base URLs of the mesh nodes to attach to.
	MeshURLs []string `json:"mesh_urls"`
	// ConnectorID and Group are what the credential states.
	ConnectorID string `json:"connector_id"`
	Group       string `json:"group"`
	// Credential is the signed connector credential.
	Credential string `json:"credential"`
	// CredentialIssued and CredentialExpires bound its lifetime.
	CredentialIssued  time.Time `json:"credential_issued"`
	CredentialExpires time.Time `json:"credential_expires"`
}

// ErrNotEnrolled is returned when the state directory holds no enrolment.
var ErrNotEnrolled = errors.New("connector is not enrolled: run \"connectord enroll --token ...\" first")

// LoadState reads the state file in dir.
func LoadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, fmt.Errorf("connector: load state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("connector: load state %s: %w", filepath.Join(dir, stateFile), err)
	}
	if s.Credential == "" || len(s.MeshURLs) == 0 {
		return nil, fmt.Errorf("connector: load state %s: no credential or mesh URL", filepath.Join(dir, stateFile))
	}
	return &s, nil
}

// Save writes s to dir atomically, mode 0600.
func (s *State) Save(dir string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("connector: save state: %w", err)
	}
	if err := wgkey.WriteFileAtomic(filepath.Join(dir, stateFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("connector: save state: %w", err)
	}
	return nil
}
