package catalog

import (
	"errors"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// validLabel reports whether s matches ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$,
// the form of ids and of each label of a host name.
func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// normalizeHost lower-cases an external host name and drops one trailing
// dot. It returns a non-empty reason when s is not a bare DNS name.
func normalizeHost(s string) (host, reason string) {
	h := strings.ToLower(s)
	switch {
	case h == "":
		return "", "must not be empty"
	case strings.Contains(h, "://"):
		return "", "must be a bare host name, without a scheme"
	case isIP(h):
		return "", "must be a DNS name, not an IP address"
	case strings.ContainsAny(h, "/?#"):
		return "", "must be a bare host name, without a path"
	case strings.Contains(h, "*"):
		return "", "wildcard host names are not supported"
	case strings.Contains(h, ":"):
		return "", "must be a bare host name, without a port"
	}
	h = strings.TrimSuffix(h, ".")
	if len(h) > maxHostLen {
		return "", "longer than 253 characters"
	}
	for _, label := range strings.Split(h, ".") {
		if !validLabel(label) {
			return "", "not a valid DNS name: each dot-separated label must be 1 to 63 letters, digits or hyphens, not starting or ending with a hyphen"
		}
	}
	return h, ""
}

func isIP(h string) bool {
	_, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
	return err == nil
}

// parseInternalURL parses an app's backend URL. It returns a non-empty
// reason when raw is not an http or https URL with a host and without user
// info, query or fragment.
func parseInternalURL(raw string) (*url.URL, string) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, "not a URL: " + err.Error()
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, "scheme must be http or https"
	case u.Opaque != "":
		return nil, "must be an absolute URL such as http://10.1.2.3:8080"
	case u.User != nil:
		return nil, "must not contain user info"
	case u.Hostname() == "":
		return nil, "host required"
	case u.RawQuery != "" || u.ForceQuery:
		return nil, "must not contain a query"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, "must not contain a fragment"
	case strings.HasSuffix(u.Host, ":"):
		return nil, "empty port"
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, "port " + port + " out of range"
		}
	}
	return u, ""
}

// redactURL returns raw for a message, hiding any password it carries.
func redactURL(raw string, u *url.URL) string {
	if u != nil {
		return u.Redacted()
	}
	if pu, err := url.Parse(raw); err == nil {
		return pu.Redacted()
	}
	if strings.Contains(raw, "@") {
		return "(URL with user info, redacted)"
	}
	return raw
}
