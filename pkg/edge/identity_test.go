package edge

import (
	"net/http"
	"testing"

	"github.com/postern/postern/pkg/catalog"
)

func TestStripIdentityHeaders(t *testing.T) {
	app := &catalog.App{IdentityHeaders: catalog.IdentityHeaders{User: "X-Remote-User", Assertion: "X-Postern-Assertion"}}
	h := http.Header{
		"X-Postern-User":      {"evil"},
		"X_postern_name":      {"evil"},
		"x-postern-groups":    {"evil"},
		"X-Remote-User":       {"evil"},
		"X_remote_user":       {"evil"},
		"X-Postern-Anything":  {"evil"},
		"X-Remote-User-Agent": {"keep"},
		"Accept":              {"keep"},
	}
	stripIdentityHeaders(h, app)
	if len(h) != 2 || h.Get("Accept") != "keep" || h.Get("X-Remote-User-Agent") != "keep" {
		t.Fatalf("got %v", h)
	}
}

func TestStripPosternCookies(t *testing.T) {
	h := http.Header{"Cookie": {"a=1; __Host-postern=tok; b=2", "__Host-postern-bind=n;c=3"}}
	stripPosternCookies(h)
	if got := h.Get("Cookie"); got != "a=1; b=2; c=3" {
		t.Fatalf("got %q, want %q", got, "a=1; b=2; c=3")
	}
	h = http.Header{"Cookie": {"__Host-postern=tok"}}
	stripPosternCookies(h)
	if _, ok := h["Cookie"]; ok {
		t.Fatalf("empty Cookie header kept: %v", h)
	}
}
