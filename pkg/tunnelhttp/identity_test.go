package tunnelhttp

import (
	"net/http"
	"strings"
	"testing"
)

func TestIdentityDigest(t *testing.T) {
	names := []string{"X-Postern-User", "X-Postern-Email"}
	vals := []string{"tid/oid", "a@b.example"}
	d := IdentityDigest("app", names, vals)
	if len(d) != digestLen || IdentityDigest("app", names, vals) != d {
		t.Fatalf("digest %q: not 43 characters, or not stable", d)
	}
	// Anything that changes the headers the backend would see, or the app
	// they are for, changes the digest; so does moving a boundary.
	for _, c := range []struct {
		app         string
		names, vals []string
	}{
		{"other", names, vals},
		{"app", []string{"X-Postern-Email", "X-Postern-User"}, []string{"a@b.example", "tid/oid"}},
		{"app", names, []string{"tid/oid", "a@b.example "}},
		{"app", []string{"X-Postern-User", "X-Postern-Emai"}, []string{"tid/oid", "la@b.example"}},
		{"app", names[:1], vals[:1]},
		{"appX-Postern-User", []string{""}, []string{"tid/oid"}},
	} {
		if IdentityDigest(c.app, c.names, c.vals) == d {
			t.Errorf("%q %q %q: same digest as the original block", c.app, c.names, c.vals)
		}
	}
}

func TestParseIdentity(t *testing.T) {
	d := IdentityDigest("app", []string{"X-User"}, []string{"u"})
	if got, names, err := ParseIdentity(d); err != nil || got != d || names != nil {
		t.Fatalf("reference: %q %q %v", got, names, err)
	}
	full := IdentityFull(d, []string{"X-User", "X-Postern-Assertion"})
	if got, names, err := ParseIdentity(full); err != nil || got != d || strings.Join(names, ",") != "X-User,X-Postern-Assertion" {
		t.Fatalf("full: %q %q %v", got, names, err)
	}
	many := make([]string, maxIdentityNames+1)
	for i := range many {
		many[i] = "X-H" + strings.Repeat("a", i+1)
	}
	for _, bad := range []string{
		"", " X-User", d[:42], d + "A", strings.Replace(d, d[:1], "+", 1), strings.Replace(d, d[:1], "=", 1),
		d + " ", d + "  X-User", d + " X-User ", d + " x-user", d + " X/User", d + " X:User", d + " X-User X-User",
		d + " Postern-Target", d + " Content-Length", d + " Host", d + " Transfer-Encoding", d + " Connection",
		d + " X-Ok\x00", IdentityFull(d, many),
	} {
		if _, _, err := ParseIdentity(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestIdentityValues(t *testing.T) {
	names := []string{"X-User", "X-Groups"}
	d := IdentityDigest("app", names, []string{"u", "g1,g2"})
	h := http.Header{"X-User": {"u"}, "X-Groups": {"g1,g2"}}
	if v, err := IdentityValues(h, "app", d, names); err != nil || strings.Join(v, "|") != "u|g1,g2" {
		t.Fatalf("got %q %v", v, err)
	}
	for name, c := range map[string]struct {
		h   http.Header
		app string
	}{
		"other app":      {h, "other"},
		"changed value":  {http.Header{"X-User": {"v"}, "X-Groups": {"g1,g2"}}, "app"},
		"missing header": {http.Header{"X-User": {"u"}}, "app"},
		"repeated":       {http.Header{"X-User": {"u", "u"}, "X-Groups": {"g1,g2"}}, "app"},
		"bad value":      {http.Header{"X-User": {"u\r\nX-Evil: 1"}, "X-Groups": {"g1,g2"}}, "app"},
	} {
		if _, err := IdentityValues(c.h, c.app, d, names); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	big := strings.Repeat("a", maxIdentityBytes)
	if _, err := IdentityValues(http.Header{"X-User": {big}}, "app", IdentityDigest("app", names[:1], []string{big}), names[:1]); err == nil {
		t.Error("a block past the size bound was accepted")
	}
}
