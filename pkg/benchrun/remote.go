package benchrun

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// RemoteScenario is the name of the rows of a remote run.
const RemoteScenario = "remote"

// RemoteTarget is an already-deployed app URL measured by RunRemote.
type RemoteTarget struct {
	// URL is the http or https URL GET is sent to.
	URL string
	// Cookie, if not nil, is sent with every request (a session cookie of
	// a pre-authenticated app).
	Cookie *http.Cookie
}

// ParseCookie parses a NAME=VALUE cookie argument.
func ParseCookie(s string) (*http.Cookie, error) {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return nil, fmt.Errorf("benchrun: cookie: want NAME=VALUE")
	}
	cks, err := http.ParseCookie(s)
	if err != nil || len(cks) != 1 || cks[0].Name != name {
		return nil, fmt.Errorf("benchrun: cookie %q: not a valid cookie name and value", name)
	}
	_ = value
	return cks[0], nil
}

// RemoteScenarioFor returns the scenario that measures t as the direct
// scenario does (closed loop at 1 and 32 workers, one HTTP/1.1 keep-alive
// connection each, primed), with the system's proxy settings ignored.
func RemoteScenarioFor(t RemoteTarget) (Scenario, error) {
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Scenario{}, fmt.Errorf("benchrun: remote URL %q: want an absolute http or https URL", t.URL)
	}
	return Scenario{Name: RemoteScenario, Concurrency: []int{1, 32}, Prime: true,
		Open: func(_ context.Context, _ System, p Params) (*Row, error) {
			d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
			tr := http1(&http.Transport{DialContext: d.DialContext, IdleConnTimeout: 90 * time.Second,
				TLSHandshakeTimeout: 10 * time.Second, DisableCompression: true}, p.Concurrency)
			c := noRedirect(&http.Client{Transport: tr, Timeout: time.Minute})
			return &Row{Op: GetOp(c, u.String(), -1, t.Cookie), Close: c.CloseIdleConnections,
				Finish: func(r *Result) { r.Target = u.Redacted() }}, nil
		}}, nil
}

// RunRemote measures an already-deployed app from this machine, with no
// in-process system: the rows are named "remote".
func RunRemote(ctx context.Context, t RemoteTarget, cfg Config) (Report, error) {
	s, err := RemoteScenarioFor(t)
	if err != nil {
		return Report{}, err
	}
	return RunOn(ctx, nil, []Scenario{s}, cfg)
}
