package connector

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/postern/postern/pkg/enroll"
)

func TestLoadStateWithoutNodes(t *testing.T) {
	dir := t.TempDir()
	old := `{"mesh_urls":["https://mesh.example.com"],"connector_id":"c-1","group":"g","credential":"x",
"credential_issued":"2026-01-01T00:00:00Z","credential_expires":"2026-02-01T00:00:00Z"}`
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadState(dir)
	if err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if len(s.Nodes) != 0 || s.MeshURLs[0] != "https://mesh.example.com" {
		t.Fatalf("got %+v, want the seed and no nodes", s)
	}
	if got, want := s.candidates(nil), []string{"https://mesh.example.com"}; !cmp.Equal(got, want) {
		t.Fatalf("candidates: got %v, want %v", got, want)
	}
}

func TestMergeNodes(t *testing.T) {
	a := enroll.NodeInfo{ID: "a", Region: "eu", URL: "https://a.example.com"}
	b := enroll.NodeInfo{ID: "b", Region: "us", URL: "https://b.example.com"}
	a2 := enroll.NodeInfo{ID: "a", Region: "eu", URL: "https://a2.example.com"}
	tests := []struct {
		name        string
		known, add  []enroll.NodeInfo
		want        []enroll.NodeInfo
		wantChanged bool
	}{
		{"first", nil, []enroll.NodeInfo{b, a}, []enroll.NodeInfo{a, b}, true},
		{"same again", []enroll.NodeInfo{a, b}, []enroll.NodeInfo{a}, []enroll.NodeInfo{a, b}, false},
		{"replace by id", []enroll.NodeInfo{a, b}, []enroll.NodeInfo{a2}, []enroll.NodeInfo{a2, b}, true},
		{"nothing said keeps all", []enroll.NodeInfo{a}, nil, []enroll.NodeInfo{a}, false},
		{"bad entries ignored", []enroll.NodeInfo{a}, []enroll.NodeInfo{{ID: "", URL: "https://x"}, {ID: "y", URL: "ftp://y"}}, []enroll.NodeInfo{a}, false},
		{"trailing slash trimmed", nil, []enroll.NodeInfo{{ID: "a", Region: "eu", URL: "https://a.example.com/"}}, []enroll.NodeInfo{a}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed := mergeNodes(tt.known, tt.add)
			if diff := cmp.Diff(tt.want, got); diff != "" || changed != tt.wantChanged {
				t.Fatalf("got changed %v, want %v; nodes (-want +got):\n%s", changed, tt.wantChanged, diff)
			}
		})
	}
}

func TestCandidatesSkipAliasedSeed(t *testing.T) {
	s := State{MeshURLs: []string{"https://127.0.0.1:8443/", "https://other.example.com"},
		Nodes: []enroll.NodeInfo{{ID: "a", URL: "https://a.example.com"}}}
	got := s.candidates(map[string]string{"https://127.0.0.1:8443": "a"})
	want := []string{"https://a.example.com", "https://other.example.com"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("candidates (-want +got):\n%s", diff)
	}
}
