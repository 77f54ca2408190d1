package tunnelhttp

import (
	"net/http"
	"testing"
)

func TestStripInternal(t *testing.T) {
	h := http.Header{
		"Postern-Target":  {"http://evil"},
		"postern-error":   {"x"},
		"POSTERN-ANY":     {"y"},
		"X-Request-Id":    {"keep"},
		"Posterna":        {"keep"},
		"Accept-Encoding": {"gzip"},
	}
	StripInternal(h)
	if len(h) != 3 || h.Get("X-Request-Id") != "keep" || h["Posterna"] == nil {
		t.Fatalf("got %v", h)
	}
}
