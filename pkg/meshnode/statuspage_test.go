package meshnode

import (
	"net/http/httptest"
	"testing"
)

func TestStatusContentNegotiation(t *testing.T) {
	tests := []struct {
		url, accept string
		html        bool
	}{
		{"/status", "", false},    // meshd status, Go's client
		{"/status", "*/*", false}, // curl
		{"/status", "application/json", false},
		{"/status", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true}, // Chromium, Firefox
		{"/status", "text/html", true},
		{"/status", "text/html;q=0.5, application/json", false},
		{"/status", "application/json;q=0.2, text/html;q=0.9", true},
		{"/status", "text/html;q=0", false},
		{"/status", "text/html;q=bogus, ,", true}, // an unparsable q counts as 1
		{"/status", "text/html;;;", false},        // an unparsable entry counts for nothing
		{"/status?format=json", "text/html", false},
		{"/status?format=html", "", true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", tt.url, nil)
		if tt.accept != "" {
			r.Header.Set("Accept", tt.accept)
		}
		if got := wantsStatusHTML(r); got != tt.html {
			t.Errorf("%s with Accept %q: HTML %v, want %v", tt.url, tt.accept, got, tt.html)
		}
	}
}
