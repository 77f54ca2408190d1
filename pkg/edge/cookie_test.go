package edge

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// cookieCases are Cookie header sets a hostile or sloppy client may send.
var cookieCases = [][]string{
	nil,
	{""},
	{AppCookie + "=tok"},
	{"theme=dark; " + AppCookie + "=tok; lang=en"},
	{AppCookie + "=first; " + AppCookie + "=second"},
	{AppCookie + "=bad\\value; " + AppCookie + "=good"}, // the first is invalid: net/http skips it
	{AppCookie + `="quoted"`},
	{AppCookie + `="`},
	{AppCookie + `=""`},
	{AppCookie + "="},
	{AppCookie},
	{"  " + AppCookie + "  =  spaced  ;x=1"},
	{AppCookie + "-bind-abcd1234=n; " + AppCookie + "-fresh=1"},
	{"x" + AppCookie + "=no"},
	{"__host-postern=lower"},
	{"a=1", AppCookie + "=second-line"},
	{AppCookie + "=one", AppCookie + "=two"},
	{";;; ;" + AppCookie + "=after-empties;"},
	{"a=" + AppCookie + "=in-a-value"},
	{AppCookie + "=tab\there"},
	{AppCookie + "=é"},
	{"bad name=1; " + AppCookie + "=ok"},
	{strings.Repeat("a=1;", maxCookies) + AppCookie + "=too-many"},
	{strings.Repeat("a=1;", maxCookies-2) + AppCookie + "=just-within"},
}

// TestCookieValueMatchesNetHTTP: the edge's allocation-free lookup of the
// app cookie finds exactly what (*http.Request).Cookie finds, for every
// hostile spelling.
func TestCookieValueMatchesNetHTTP(t *testing.T) {
	for _, lines := range cookieCases {
		checkCookieValue(t, lines)
	}
}

func checkCookieValue(t *testing.T, lines []string) {
	t.Helper()
	h := http.Header{}
	if lines != nil {
		h["Cookie"] = lines
	}
	got, ok := cookieValue(h, AppCookie)
	c, err := (&http.Request{Header: h}).Cookie(AppCookie)
	want, wantOK := "", err == nil
	if wantOK {
		want = c.Value
	}
	if got != want || ok != wantOK {
		t.Errorf("%.80q: got %q, %v; net/http finds %q, %v", lines, got, ok, want, wantOK)
	}
}

func FuzzCookieValue(f *testing.F) {
	for _, lines := range cookieCases {
		if len(lines) > 0 && len(lines[0]) < 200 {
			f.Add(strings.Join(lines, "\n"))
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkCookieValue(t, strings.Split(s, "\n"))
	})
}

// TestStripPosternCookies: none of Postern's cookies reaches a backend,
// however it is spelt or wherever it sits; the app's own cookies pass in
// their order.
func TestStripPosternCookies(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string // nil: no Cookie header
	}{
		{nil, nil},
		{[]string{"theme=dark; lang=en"}, []string{"theme=dark; lang=en"}},
		{[]string{AppCookie + "=tok"}, nil},
		{[]string{" " + AppCookie + " = tok ; "}, nil},
		{[]string{"theme=dark; " + AppCookie + "=tok; lang=en"}, []string{"theme=dark; lang=en"}},
		{[]string{AppCookie + "-bind-abcd1234=n;" + AppCookie + "-fresh=1;x=1"}, []string{"x=1"}},
		{[]string{"a=1", AppCookie + "=crumb; b=2"}, []string{"a=1; b=2"}},
		{[]string{"a=1", "b=2"}, []string{"a=1; b=2"}},
		{[]string{"a=" + AppCookie}, []string{"a=" + AppCookie}}, // a value, not a name
		{[]string{"x" + AppCookie + "=1"}, []string{"x" + AppCookie + "=1"}},
		{[]string{";;" + AppCookie + "=t;;a=1;;"}, []string{"a=1"}},
		{[]string{AppCookie}, nil}, // no "=": still a Postern name
	} {
		h := http.Header{}
		if tc.in != nil {
			h["Cookie"] = slices.Clone(tc.in)
		}
		stripPosternCookies(h)
		if got := h["Cookie"]; !slices.Equal(got, tc.want) || (tc.want == nil) != (got == nil) {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzStripPosternCookies(f *testing.F) {
	f.Add("theme=dark; " + AppCookie + "=tok; lang=en")
	f.Add("a=1\n" + AppCookie + "-bind-x=2; b=3")
	f.Add(" " + AppCookie + " =x;y=" + AppCookie)
	f.Fuzz(func(t *testing.T, s string) {
		h := http.Header{"Cookie": strings.Split(s, "\n")}
		in := (&http.Request{Header: h.Clone()}).Cookies()
		stripPosternCookies(h)
		out := (&http.Request{Header: h}).Cookies()
		for _, c := range out {
			if strings.HasPrefix(c.Name, AppCookie) {
				t.Fatalf("%q: Postern cookie %q left in %q", s, c.Name, h["Cookie"])
			}
		}
		var kept []string
		for _, c := range in {
			if !strings.HasPrefix(c.Name, AppCookie) {
				kept = append(kept, c.Name+"="+c.Value)
			}
		}
		var got []string
		for _, c := range out {
			got = append(got, c.Name+"="+c.Value)
		}
		if !slices.Equal(got, kept) && len(in) <= maxCookies {
			t.Fatalf("%q: the app's cookies %q became %q", s, kept, got)
		}
	})
}

// TestCookieHotPathAllocations: finding the app cookie, and removing
// Postern's cookies from a request that carries only them or none of
// them, allocate nothing.
func TestCookieHotPathAllocations(t *testing.T) {
	line := "theme=dark; " + AppCookie + "=tok; lang=en"
	h := http.Header{"Cookie": {line}}
	if n := testing.AllocsPerRun(100, func() { cookieValue(h, AppCookie) }); n != 0 {
		t.Errorf("cookieValue: %v allocations", n)
	}
	theirs, ours := []string{"theme=dark; lang=en"}, []string{AppCookie + "=tok"}
	if n := testing.AllocsPerRun(100, func() {
		h["Cookie"] = theirs
		stripPosternCookies(h)
		h["Cookie"] = ours
		stripPosternCookies(h)
		if _, ok := h["Cookie"]; ok {
			t.Fatal("Postern cookie kept")
		}
	}); n != 0 {
		t.Errorf("stripPosternCookies: %v allocations", n)
	}
}
