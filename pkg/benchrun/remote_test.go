package benchrun

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRunRemote(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ck, err := r.Cookie("__Host-postern"); err != nil || ck.Value != "tok" {
			http.Redirect(w, r, "/sign-in", http.StatusFound)
			return
		}
		w.Write([]byte("hello"))
	}))
	defer srv.Close()
	cfg := Config{Warmup: 10 * time.Millisecond, Requests: 30, Concurrency: []int{2}}
	ck, err := ParseCookie("__Host-postern=tok")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := RunRemote(t.Context(), RemoteTarget{URL: srv.URL + "/hello", Cookie: ck}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 1 || rep.Rows[0].Scenario != RemoteScenario || rep.Rows[0].Requests != 30 || rep.Rows[0].Errors != 0 ||
		rep.Rows[0].Target != srv.URL+"/hello" {
		t.Fatalf("got %+v, want one remote row of 30 requests, no errors", rep.Rows)
	}
	// Without the cookie the app redirects to sign-in: every request fails
	// as a 302, which is not followed.
	rep, err = RunRemote(t.Context(), RemoteTarget{URL: srv.URL + "/hello"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Rows[0]; r.ErrorsByKind["status_302"] != r.Errors || r.Errors < 30 {
		t.Errorf("got errors %d by kind %v, want all status_302", r.Errors, r.ErrorsByKind)
	}
}

func TestRemoteBadInput(t *testing.T) {
	for _, u := range []string{"", "ftp://x/", "/relative", "http://"} {
		if _, err := RemoteScenarioFor(RemoteTarget{URL: u}); err == nil {
			t.Errorf("URL %q: got nil, want an error", u)
		}
	}
	for _, c := range []string{"", "novalue", "=v", "bad name=v"} {
		if _, err := ParseCookie(c); err == nil {
			t.Errorf("cookie %q: got nil, want an error", c)
		}
	}
	if ck, err := ParseCookie("a=b=c"); err != nil || ck.Name != "a" || ck.Value != "b=c" {
		t.Errorf("got %v, %v; want a=b=c", ck, err)
	}
}

func TestChartsSVG(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("x")) }))
	defer srv.Close()
	scs := []Scenario{fakeScenario("a<b", "", srv.URL, false, 1, 2), fakeScenario("bulk", "", srv.URL, true, 1)}
	rep, err := RunOn(t.Context(), nil, scs, Config{Requests: 50})
	if err != nil {
		t.Fatal(err)
	}
	charts := Charts(rep.Rows)
	for _, name := range []string{"cdf-a<b.svg", "cdf-bulk.svg", "p50.svg", "mib_s.svg"} {
		svg := string(charts[name])
		if !strings.HasPrefix(svg, "<svg ") || !strings.HasSuffix(svg, "</svg>\n") {
			t.Errorf("%s: got %.80q, want an SVG document", name, svg)
		}
		if strings.Contains(svg, "a<b") {
			t.Errorf("%s: label not escaped", name)
		}
	}
	if n := strings.Count(string(charts["cdf-a<b.svg"]), "<polyline"); n != 2 {
		t.Errorf("CDF lines: got %d, want 2 (one per row)", n)
	}
	if n := len(Charts(nil)); n != 0 {
		t.Errorf("charts of no rows: got %d, want 0", n)
	}
}
