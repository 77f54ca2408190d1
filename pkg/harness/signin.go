package harness

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

var (
	formAction = regexp.MustCompile(`<form method="post" action="([^"]+)">`)
	formID     = regexp.MustCompile(`<input type="hidden" name="id" value="([^"]+)">`)
)

// Browser returns an HTTP client that behaves like a browser for the
// sign-in flow: it keeps cookies, trusts the dev CA, sends *.localhost to
// loopback, and follows no redirects by itself (see Navigate).
func (h *Harness) Browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	c := localClient(h.CA)
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// Navigate follows redirects from u as a browser would (Accept: text/html)
// with a client from Browser, and picks user on the development provider's
// login page. When stopAt is non-empty it stops at the first redirect whose
// target contains it and returns that redirect. It returns the last
// response, its body already read.
func Navigate(ctx context.Context, c *http.Client, u, user, stopAt string) (*http.Response, string, error) {
	method, form := "GET", url.Values(nil)
	for hop := 0; hop < 20; hop++ {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, u, body)
		if err != nil {
			return nil, "", err
		}
		req.Header.Set("Accept", "text/html")
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, "", fmt.Errorf("%s %s: %w", method, u, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		method, form = "GET", nil
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
			next, err := resp.Request.URL.Parse(loc)
			if err != nil {
				return nil, "", err
			}
			if stopAt != "" && strings.Contains(next.String(), stopAt) {
				return resp, string(b), nil
			}
			u = next.String()
			continue
		}
		if m := formAction.FindSubmatch(b); m != nil && user != "" {
			id := formID.FindSubmatch(b)
			next, err := resp.Request.URL.Parse(html.UnescapeString(string(m[1])))
			if err != nil || id == nil {
				return nil, "", errors.New("harness: unexpected login page")
			}
			u, method = next.String(), "POST"
			form = url.Values{"id": {html.UnescapeString(string(id[1]))}, "user": {user}}
			continue
		}
		return resp, string(b), nil
	}
	return nil, "", errors.New("harness: too many redirects")
}

// SignIn signs user in to the sample app through mesh node 0 and returns
// the app cookie the mesh set, for clients that then send it themselves
// (benchmarks). It needs Options.Auth.
func (h *Harness) SignIn(ctx context.Context, user string) (*http.Cookie, error) {
	c := h.Browser()
	resp, body, err := Navigate(ctx, c, h.AppURL(0, "/hello"), user, "")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("harness: sign in as %s: status %d: %.200s", user, resp.StatusCode, body)
	}
	u, _ := url.Parse(h.AppURL(0, "/"))
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "__Host-postern" {
			return ck, nil
		}
	}
	return nil, errors.New("harness: sign in: no app cookie was set")
}
