package deptest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeStandsAlone: README.md works in a bare clone: every relative
// link names a file or directory of the repository, and no path leads out
// of it (such as ../shared/...).
func TestReadmeStandsAlone(t *testing.T) {
	root := moduleRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	links := regexp.MustCompile(`\]\(([^)#\s]*)(#[^)]*)?\)`).FindAllStringSubmatch(readme, -1)
	if len(links) == 0 {
		t.Fatal("found no links in README.md: the check is broken")
	}
	for _, l := range links {
		target := l[1]
		if strings.HasPrefix(target, "https://") || strings.HasPrefix(target, "http://") || target == "" {
			continue
		}
		abs := filepath.Join(root, filepath.FromSlash(target))
		if rel, err := filepath.Rel(root, abs); err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("link %q leads out of the repository", target)
			continue
		}
		if _, err := os.Stat(abs); err != nil {
			t.Errorf("link %q: %v", target, err)
		}
	}
	if m := regexp.MustCompile("`\\.\\./[^`]*`").FindString(readme); m != "" {
		t.Errorf("README names a path outside the repository: %s", m)
	}
	if !regexp.MustCompile(`(?i)first run[^.]*\d+ (minutes|min|seconds|s)\b`).MatchString(readme) {
		t.Error("README does not say how long the first run takes")
	}
}
