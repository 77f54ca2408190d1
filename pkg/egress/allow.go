package egress

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// AllowList is an operator-set list of internal destinations a connector may
// reach. With a non-empty list, a compromised mesh cannot use the connector
// to reach anything else. The zero AllowList allows everything.
type AllowList struct {
	rules []rule
}

type rule struct {
	host   string       // exact host name, or ".suffix" for "*.suffix"; empty for a CIDR rule
	prefix netip.Prefix // valid for a CIDR or IP rule
	port   uint16       // 0 = any port
}

// ParseAllowList parses entries of the forms "host", "*.example.corp",
// "10.0.0.0/8", "192.0.2.7", "[fd00::/8]" or "[2001:db8::1]", each optionally
// followed by ":port". Host names match case-insensitively; IP and CIDR rules
// are checked against the address actually dialled, after name resolution.
func ParseAllowList(entries []string) (AllowList, error) {
	var al AllowList
	for _, e := range entries {
		r, err := parseRule(strings.TrimSpace(e))
		if err != nil {
			return AllowList{}, fmt.Errorf("egress: allow-list entry %q: %w", e, err)
		}
		al.rules = append(al.rules, r)
	}
	return al, nil
}

func parseRule(e string) (rule, error) {
	if e == "" {
		return rule{}, fmt.Errorf("empty entry")
	}
	hostPart, port, err := splitPort(e)
	if err != nil {
		return rule{}, err
	}
	r := rule{port: port}
	if p, err := netip.ParsePrefix(hostPart); err == nil {
		r.prefix = p.Masked()
		return r, nil
	}
	if a, err := netip.ParseAddr(hostPart); err == nil {
		r.prefix = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		return r, nil
	}
	h := strings.ToLower(strings.TrimSuffix(hostPart, "."))
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		h = "." + rest
	}
	if !validHostPattern(h) {
		return rule{}, fmt.Errorf("not a host name, IP address or CIDR")
	}
	r.host = h
	return r, nil
}

// splitPort splits "x:port" and "[x]:port"; a bare IPv6 address or CIDR has
// no port unless bracketed.
func splitPort(e string) (string, uint16, error) {
	if strings.HasPrefix(e, "[") {
		end := strings.Index(e, "]")
		if end < 0 {
			return "", 0, fmt.Errorf("missing ]")
		}
		host, rest := e[1:end], e[end+1:]
		if rest == "" {
			return host, 0, nil
		}
		p, ok := strings.CutPrefix(rest, ":")
		if !ok {
			return "", 0, fmt.Errorf("unexpected %q after ]", rest)
		}
		port, err := parsePort(p)
		return host, port, err
	}
	if strings.Count(e, ":") != 1 {
		return e, 0, nil // no port, or a bare IPv6 address/CIDR
	}
	host, p, _ := strings.Cut(e, ":")
	port, err := parsePort(p)
	return host, port, err
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(n), nil
}

func validHostPattern(h string) bool {
	h = strings.TrimPrefix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Empty reports whether the list allows everything.
func (al AllowList) Empty() bool { return len(al.rules) == 0 }

// AllowsName reports whether a name rule allows host (a DNS name, not an IP)
// on port. When it does, the connector may dial whatever the name resolves
// to.
func (al AllowList) AllowsName(host string, port uint16) bool {
	if al.Empty() {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, r := range al.rules {
		if r.host == "" || (r.port != 0 && r.port != port) {
			continue
		}
		if host == r.host || (strings.HasPrefix(r.host, ".") && strings.HasSuffix(host, r.host)) {
			return true
		}
	}
	return false
}

// AllowsAddr reports whether an IP or CIDR rule allows dialling addr.
func (al AllowList) AllowsAddr(addr netip.AddrPort) bool {
	if al.Empty() {
		return true
	}
	a := addr.Addr().Unmap()
	for _, r := range al.rules {
		if !r.prefix.IsValid() || (r.port != 0 && r.port != addr.Port()) {
			continue
		}
		if r.prefix.Contains(a) {
			return true
		}
	}
	return false
}
