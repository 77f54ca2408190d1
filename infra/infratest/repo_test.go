package infratest

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/testkit"
)

// checkRepoMetadata runs infra/scripts/repo-metadata.sh on the packages in
// pkgs (what task repo does) and checks the result the way the clients
// read it: apt-get update and apt-cache against the apt repository in an
// apt of its own (file://, nothing of the host's), and repomd.xml and
// primary.xml of the yum repository, whose every package's SHA-256 must
// be its file's.
func checkRepoMetadata(t *testing.T, pkgs string, names []string) {
	t.Helper()
	for _, name := range []string{"apt-ftparchive", "createrepo_c", "apt-get", "apt-cache"} {
		testkit.Tool(t, name)
	}
	out := filepath.Join(t.TempDir(), "repo")
	run(t, "", nil, "bash", "infra/scripts/repo-metadata.sh", pkgs, out)

	// apt, in a root of its own.
	root := t.TempDir()
	for _, d := range []string{"etc/apt/sources.list.d", "etc/apt/preferences.d", "etc/apt/apt.conf.d", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644)
	os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte("deb [trusted=yes] file://"+filepath.Join(out, "apt")+" ./\n"), 0o644)
	opts := []string{"-o", "Dir=" + root, "-o", "Dir::State::status=" + filepath.Join(root, "var/lib/dpkg/status"),
		"-o", "Debug::NoLocking=1", "-o", "APT::Architecture=amd64", "-o", "APT::Sandbox::User=root"}
	run(t, "", nil, "apt-get", append(opts, "update")...)
	for _, name := range names {
		policy := string(run(t, "", nil, "apt-cache", append(opts, "policy", "postern-"+name)...))
		if !strings.Contains(policy, "Candidate: 0.0.0~test") { // nfpm writes a pre-release the Debian way
			t.Errorf("apt-cache policy postern-%s: no candidate 0.0.0~test:\n%s", name, policy)
		}
	}

	// yum: repomd.xml names primary.xml, which lists every package.
	var repomd struct {
		Data []struct {
			Type     string `xml:"type,attr"`
			Location struct {
				Href string `xml:"href,attr"`
			} `xml:"location"`
		} `xml:"data"`
	}
	b, err := os.ReadFile(filepath.Join(out, "yum", "repodata", "repomd.xml"))
	if err != nil || xml.Unmarshal(b, &repomd) != nil {
		t.Fatalf("repomd.xml: %v", err)
	}
	var primary string
	for _, d := range repomd.Data {
		if d.Type == "primary" {
			primary = d.Location.Href
		}
	}
	f, err := os.Open(filepath.Join(out, "yum", primary))
	if err != nil {
		t.Fatalf("primary: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		Packages []struct {
			Name     string `xml:"name"`
			Checksum struct {
				Type  string `xml:"type,attr"`
				Value string `xml:",chardata"`
			} `xml:"checksum"`
			Location struct {
				Href string `xml:"href,attr"`
			} `xml:"location"`
		} `xml:"package"`
	}
	raw, _ := io.ReadAll(zr)
	if err := xml.Unmarshal(raw, &md); err != nil {
		t.Fatalf("primary.xml: %v", err)
	}
	found := map[string]bool{}
	for _, p := range md.Packages {
		found[p.Name] = true
		data, err := os.ReadFile(filepath.Join(out, "yum", p.Location.Href))
		if err != nil {
			t.Fatalf("%s: %v", p.Location.Href, err)
		}
		sum := sha256.Sum256(data)
		if p.Checksum.Type != "sha256" || p.Checksum.Value != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: checksum %s %s does not match the file", p.Name, p.Checksum.Type, p.Checksum.Value)
		}
	}
	for _, name := range names {
		if !found["postern-"+name] {
			t.Errorf("primary.xml does not list postern-%s: %v", name, found)
		}
	}
}
