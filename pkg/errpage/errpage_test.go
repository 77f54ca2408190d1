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

// TestLinks: actions are links on the HTML page and lines of the plain
// text one.
func TestLinks(t *testing.T) {
	p := Page{Status: 403, Title: "Access denied", Reason: "no", RequestID: "r1",
		Links: []Link{{Text: "Sign in as someone else", Path: "/.postern/logout"}}}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept", "text/html")
	w := httptest.NewRecorder()
	Write(w, r, p)
	if !strings.Contains(w.Body.String(), `<a href="/.postern/logout">Sign in as someone else</a>`) {
		t.Errorf("html: got %q, want the link", w.Body.String())
	}
	w = httptest.NewRecorder()
	Write(w, httptest.NewRequest("GET", "/", nil), p)
	if !strings.Contains(w.Body.String(), "\nSign in as someone else: /.postern/logout\n") {
		t.Errorf("text: got %q, want the link's line", w.Body.String())
	}
}

// TestShown: a client-supplied value is cut to 100 characters and loses
// control characters (no header or line injection into the text page);
// HTML escaping stays the template's job.
func TestShown(t *testing.T) {
	tests := []struct{ in, want string }{
		{"app.example.com:8443", "app.example.com:8443"},
		{"a\r\nX-Evil: 1", "a\uFFFD\uFFFDX-Evil: 1"},
		{"<script>", "<script>"},
		{strings.Repeat("x", 101), strings.Repeat("x", 100) + "…"},
		{strings.Repeat("é", 100), strings.Repeat("é", 100)},
		{"\x00\x7f", "\uFFFD\uFFFD"},
	}
	for _, tt := range tests {
		if got := Shown(tt.in); got != tt.want {
			t.Errorf("Shown(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
