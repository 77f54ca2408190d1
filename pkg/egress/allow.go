package egress

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// AllowList is an operator-set list of internal destinations a connector may
// reach. With a non-empty list, a compromised mesh cannot use the connector
// to reach anything else. The zero AllowList allows every destination but
// the special ones.
//
// Special destinations are never reached unless an IP or CIDR rule that
// lies inside the special range names them, whatever else the list
// allows (a name rule, 0.0.0.0/0, or an empty list): loopback and the
// unspecified address (which reaches loopback), link-local addresses, and
// the cloud metadata services (169.254.169.254, fd00:ec2::254, Alibaba's
// 100.100.100.200, Azure's 168.63.129.16). For a metadata address only a
// rule for that very address counts, so naming all of 169.254.0.0/16
// does not open it. Names are resolved and each address is checked, so a
// name that resolves to a special address is refused too.
type AllowList struct {
	rules []rule
}

// specialRanges are the destinations that need naming, most specific
// first: an address is judged by the first range that contains it.
var specialRanges = []netip.Prefix{
	netip.MustParsePrefix("169.254.169.254/32"), // AWS, GCP, Azure, OCI instance metadata
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS instance metadata over IPv6
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud metadata
	netip.MustParsePrefix("168.63.129.16/32"),   // Azure wire server
	netip.MustParsePrefix("127.0.0.0/8"),        // loopback
	netip.MustParsePrefix("::1/128"),            // loopback
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network": 0.0.0.0 reaches loopback
	netip.MustParsePrefix("::/128"),             // unspecified: reaches loopback
	netip.MustParsePrefix("169.254.0.0/16"),     // link-local
	netip.MustParsePrefix("fe80::/10"),          // link-local
}

// nat64 is the well-known NAT64 prefix: its addresses reach the IPv4
// address in their last 32 bits.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// specialRange returns the most specific special range containing a, if
// any; a NAT64 address is judged by the IPv4 address it reaches.
func specialRange(a netip.Addr) (netip.Prefix, bool) {
	a = a.Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	for _, p := range specialRanges {
		if p.Contains(a) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// IsSpecial reports whether a is a special destination (see AllowList).
func IsSpecial(a netip.Addr) bool {
	_, ok := specialRange(a)
	return ok
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

// Empty reports whether the list has no rule: it allows every destination
// but the special ones.
func (al AllowList) Empty() bool { return len(al.rules) == 0 }

// AllowsName reports whether a name rule allows host (a DNS name, not an IP)
// on port. When it does, the connector may dial whatever the name resolves
// to, except special addresses.
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

// AllowsAddr reports whether an IP or CIDR rule allows dialling addr. A
// special address needs a rule inside its special range; any other is
// allowed by an empty list.
func (al AllowList) AllowsAddr(addr netip.AddrPort) bool {
	a := addr.Addr().Unmap()
	if sp, ok := specialRange(a); ok {
		return al.names(sp, a, addr.Port())
	}
	if al.Empty() {
		return true
	}
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

// names reports whether an IP or CIDR rule inside the special range sp
// allows a on port.
func (al AllowList) names(sp netip.Prefix, a netip.Addr, port uint16) bool {
	for _, r := range al.rules {
		if !r.prefix.IsValid() || (r.port != 0 && r.port != port) {
			continue
		}
		if r.prefix.Bits() >= sp.Bits() && sp.Contains(r.prefix.Addr()) && r.prefix.Contains(a) {
			return true
		}
	}
	return false
}
