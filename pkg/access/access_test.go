package access

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/catalog"
)

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "ssh.example.com", "http://ssh.example.com", "https://ssh.example.com/path", "https://ssh.example.com/?q=1", "ftp://x"} {
		if _, err := New(Config{AppURL: u}); err == nil {
			t.Errorf("%q: got a client, want an error", u)
		}
	}
	for _, u := range []string{"https://ssh.example.com", "https://ssh.example.com:8443/", "http://echo.localhost:8443"} {
		if _, err := New(Config{AppURL: u}); err != nil {
			t.Errorf("%q: %v", u, err)
		}
	}
}

// TestPathsMatchTheEdge keeps the client's copies of the reserved paths in
// step with the catalogue's (the edge serves those).
func TestPathsMatchTheEdge(t *testing.T) {
	if TCPPath != catalog.TCPPath {
		t.Errorf("TCPPath %q, the catalogue's %q", TCPPath, catalog.TCPPath)
	}
}

func jwt(payload string) string {
	return "e30." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"
}

func TestCredentialCache(t *testing.T) {
	dir := t.TempDir()
	c, err := New(Config{AppURL: "https://ssh.example.com:8443", CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if c.loadCached() != nil {
		t.Fatal("a credential before any sign-in")
	}
	cr := &credential{App: "ssh.example.com:8443", Token: jwt(`{"exp":2000000000}`), Nonce: "n", Expires: 2000000000}
	if err := c.saveCached(cr); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(c.cachePath())
	if err != nil || fi.Mode().Perm() != 0o600 || strings.ContainsAny(fi.Name(), ":/") {
		t.Fatalf("cache file %v: mode %v (%v), want 0600 and no : or / in the name", fi.Name(), fi.Mode().Perm(), err)
	}
	if got := c.loadCached(); got == nil || got.Token != cr.Token || got.Nonce != "n" {
		t.Fatalf("reloaded %+v", got)
	}
	other, _ := New(Config{AppURL: "https://db.example.com", CacheDir: dir})
	if other.loadCached() != nil {
		t.Error("another app's client read this app's sign-in")
	}
	if err := c.Logout(); err != nil || c.loadCached() != nil {
		t.Errorf("after logout: %v, %+v", err, c.loadCached())
	}
}

func TestTokenExpiry(t *testing.T) {
	if exp, err := tokenExpiry(jwt(`{"exp":1700000000,"aud":"x"}`)); err != nil || exp != 1700000000 {
		t.Errorf("got %d, %v", exp, err)
	}
	for _, bad := range []string{"", "a.b", jwt(`{}`), jwt(`not json`), "a.!!!.c"} {
		if _, err := tokenExpiry(bad); err == nil {
			t.Errorf("%q: got no error", bad)
		}
	}
}
