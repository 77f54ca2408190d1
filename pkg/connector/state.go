package connector

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/postern/postern/pkg/enroll"
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
	// MeshURLs are the HTTPS base URLs given at enrolment: the seeds the
	// connector starts from when it knows no Nodes, never forgotten.
	MeshURLs []string `json:"mesh_urls"`
	// Nodes are the mesh nodes learned from attach responses, by id; the
	// connector attaches to the nearest of them. A state file written
	// before nodes were learned has none.
	Nodes []enroll.NodeInfo `json:"nodes,omitempty"`
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
var ErrNotEnrolled = errors.New("connector is not enrolled: run \"connectord enroll --mesh URL --token-file FILE\" (or with the token in POSTERN_ENROLL_TOKEN) first, with the same --state-dir")

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

// mergeNodes returns known with add merged in: an entry replaces the one
// with the same id, a new id is added. Entries without an id or an http(s)
// URL are ignored. The result is sorted by id; changed reports whether it
// differs from known.
func mergeNodes(known, add []enroll.NodeInfo) (merged []enroll.NodeInfo, changed bool) {
	merged = slices.Clone(known)
	for _, n := range add {
		n.URL = strings.TrimRight(n.URL, "/")
		if n.ID == "" || checkMeshURL(n.URL) != nil {
			continue
		}
		i := slices.IndexFunc(merged, func(m enroll.NodeInfo) bool { return m.ID == n.ID })
		switch {
		case i < 0:
			merged = append(merged, n)
			changed = true
		case merged[i] != n:
			merged[i] = n
			changed = true
		}
	}
	slices.SortFunc(merged, func(a, b enroll.NodeInfo) int { return strings.Compare(a.ID, b.ID) })
	return merged, changed
}

// candidates returns the URLs worth measuring: every known node's, then
// each seed that is not known to be one of them under another URL. alias
// maps URLs to the node ids their attach responses gave.
func (s State) candidates(alias map[string]string) []string {
	var out []string
	ids := map[string]bool{}
	for _, n := range s.Nodes {
		ids[n.ID] = true
		if !slices.Contains(out, n.URL) {
			out = append(out, n.URL)
		}
	}
	for _, u := range s.MeshURLs {
		u = strings.TrimRight(u, "/")
		if !ids[alias[u]] && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}
