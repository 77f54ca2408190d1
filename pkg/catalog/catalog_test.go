package catalog

import (
	"fmt"
	"strings"
	"testing"
)

func mustParse(tb testing.TB, doc string) *Catalog {
	tb.Helper()
	c, err := Parse("catalog.yaml", []byte(doc))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// twoApps is a catalogue with apps "a" (a.example.com) and "b" (localhost).
var twoApps = appDoc(nil,
	"  - id: b",
	"    host: localhost",
	"    internal_url: http://127.0.0.1:9",
	"    connector_group: hq",
	"    preauth: passthrough",
)

func TestAppByHost(t *testing.T) {
	c := mustParse(t, twoApps)
	tests := []struct {
		host string
		want string // app id, "" for no match
	}{
		{"a.example.com", "a"},
		{"A.Example.COM", "a"},
		{"a.example.com:443", "a"},
		{"a.example.com.", "a"},
		{"A.EXAMPLE.COM.:8443", "a"},
		{"localhost", "b"},
		{"LOCALHOST:8080", "b"},
		{"b.example.com", ""},
		{"a.example.com..", ""},
		{"a.example.com:443:443", ""},
		{"", ""},
		{":443", ""},
		{".", ""},
		{"[::1]:443", ""},
		{strings.Repeat("a", 300), ""},
		{strings.Repeat("A", 300), ""},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			a, ok := c.AppByHost(tt.host)
			got := ""
			if ok {
				got = a.ID
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAppByHostDoesNotAllocate(t *testing.T) {
	c := mustParse(t, twoApps)
	for _, host := range []string{"a.example.com", "A.Example.com.:443", "nope.example.com"} {
		if n := testing.AllocsPerRun(100, func() { c.AppByHost(host) }); n != 0 {
			t.Errorf("%s: got %v allocations, want 0", host, n)
		}
	}
}

func TestCatalogSlicesAreCopies(t *testing.T) {
	c := mustParse(t, twoApps)
	c.Apps()[0] = nil
	c.Groups()[0] = nil
	if c.Apps()[0] == nil || c.Groups()[0] == nil {
		t.Fatal("got catalogue changed through a returned slice, want it immutable")
	}
}

func BenchmarkAppByHost(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("connector_groups:\n  - id: hq\napps:\n")
	for i := range 1000 {
		fmt.Fprintf(&sb, "  - {id: app%d, host: app%d.apps.example.com, internal_url: http://10.0.0.1, connector_group: hq, preauth: passthrough}\n", i, i)
	}
	c := mustParse(b, sb.String())
	for _, bc := range []struct{ name, host string }{
		{"hit", "app500.apps.example.com"},
		{"hit_mixed_case_port", "App500.Apps.Example.com:443"},
		{"miss", "nope.apps.example.com"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.AppByHost(bc.host)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("connector_groups:\n  - id: hq\napps:\n")
	for i := range 100 {
		fmt.Fprintf(&sb, "  - id: app%d\n    host: app%d.apps.example.com\n    internal_url: http://10.0.0.1:8080/x\n    connector_group: hq\n    preauth: passthrough\n", i, i)
	}
	data := []byte(sb.String())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("catalog.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
