package authfn

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
)

// maxGraphBody bounds the Graph response read (about 50,000 object ids).
const maxGraphBody = 4 << 20

// memberGroups asks Microsoft Graph for every group and directory role the
// signed-in user belongs to (transitively), with the access token of the
// same sign-in, and keeps those that keep returns. The token never appears
// in an error.
func (s *Service) memberGroups(ctx context.Context, accessToken string, keep func([]string) []string) ([]string, error) {
	if accessToken == "" {
		return nil, fmt.Errorf("get member objects: %w: the sign-in returned no access token", ErrGraph)
	}
	body := bytes.NewReader([]byte(`{"securityEnabledOnly":false}`))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.GraphURL+"/v1.0/me/getMemberObjects", body)
	if err != nil {
		return nil, fmt.Errorf("get member objects: %w: %v", ErrGraph, err)
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get member objects: %w: %v", ErrGraph, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxGraphBody+1))
	if err != nil {
		return nil, fmt.Errorf("get member objects: %w: read: %v", ErrGraph, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get member objects: %w: status %d", ErrGraph, resp.StatusCode)
	}
	if len(data) > maxGraphBody {
		return nil, fmt.Errorf("get member objects: %w: response over %d bytes", ErrGraph, maxGraphBody)
	}
	var out struct {
		Value []string `json:"value"`
	}
	if err := json.Unmarshal(data, &out); err != nil || out.Value == nil {
		return nil, fmt.Errorf("get member objects: %w: response is not {\"value\":[...]}", ErrGraph)
	}
	slices.Sort(out.Value)
	return keep(slices.Compact(out.Value)), nil
}
