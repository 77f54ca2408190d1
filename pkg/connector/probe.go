package connector

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/postern/postern/pkg/loopback"
)

// Probe asks the connector's health listener (a loopback URL such as
// http://127.0.0.1:7801/readyz) and returns nil when it answers 200. It
// is what a Kubernetes exec probe runs ("connectord probe URL"): the
// health listener stays on loopback, where kubelet's HTTP probes cannot
// reach. Any URL but a loopback http one is refused.
func Probe(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.User != nil {
		return fmt.Errorf("probe: %q: want http://127.0.0.1:PORT/PATH", rawURL)
	}
	if !loopback.IsHost(u.Hostname()) {
		return fmt.Errorf("probe: %q: the health listener is on loopback only", rawURL)
	}
	ctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe: %s answered %d: %s", u.Path, resp.StatusCode, b)
	}
	return nil
}
