package errpage

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	for _, accept := range []string{"text/html,application/xhtml+xml", "*/*"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept", accept)
		w := httptest.NewRecorder()
		Write(w, r, Page{Status: 503, Title: "No connector online", Reason: `no connector online for group <hq>`, RequestID: "abc"})
		body := w.Body.String()
		if w.Code != 503 || !strings.Contains(body, "abc") || w.Header().Get("X-Request-Id") != "abc" {
			t.Fatalf("got %d %q", w.Code, body)
		}
		hd := w.Header()
		if hd.Get("X-Content-Type-Options") != "nosniff" || hd.Get("Referrer-Policy") != "no-referrer" ||
			hd.Get("X-Frame-Options") != "DENY" || !strings.Contains(hd.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Fatalf("hardening headers missing: %v", hd)
		}
		if strings.HasPrefix(accept, "text/html") {
			if !strings.Contains(body, "&lt;hq&gt;") || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
				t.Fatalf("html page not escaped or wrong type: %q", body)
			}
		} else if !strings.HasPrefix(body, "503 No connector online: no connector online for group <hq>") {
			t.Fatalf("plain page: got %q", body)
		}
	}
}
