package catalog

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/postern/postern/pkg/yamlcheck"
)

// Load reads and parses the catalogue file at path; path names the file in
// error messages.
func Load(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	return Parse(path, data)
}

// Parse validates data, the contents of a catalogue file, and builds a
// [Catalog]. name is used in error messages. On failure the error joins one
// [*Error] per problem, in document order.
func Parse(name string, data []byte) (*Catalog, error) {
	p := &parser{file: name}
	root := p.document(data)
	if root == nil {
		return nil, p.err()
	}
	groups, apps := p.root(root)
	p.crossCheck(groups, apps)
	if err := p.err(); err != nil {
		return nil, err
	}
	gs := make([]*ConnectorGroup, len(groups))
	for i, e := range groups {
		gs[i] = e.group
	}
	as := make([]*App, len(apps))
	for i, e := range apps {
		as[i] = e.app
	}
	c := newCatalog(data, p.homeTenant, gs, as)
	c.entra, c.issuers = p.entra, p.issuers
	return c, nil
}

// parser walks a yaml.Node tree, collecting every problem it finds.
type parser struct {
	file       string
	errs       []*Error
	homeTenant string    // decoded before the apps, whose policies need it
	entra      Entra     // the entra section, defaults applied; before the apps
	entraSet   bool      // the entra section is present
	issuers    []*Issuer // the issuers list; before the apps
}

// groupEntry is a decoded connector group with the line of its id.
type groupEntry struct {
	group  *ConnectorGroup
	label  string
	idLine int
}

// appEntry is a decoded app with the lines the cross-checks report at.
type appEntry struct {
	app                         *App
	label                       string
	idLine, hostLine, groupLine int
}

// field is one key of a mapping (yamlcheck.Field, positional: key,
// required, decode).
type field = yamlcheck.Field

func (p *parser) add(line int, class error, label, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if label != "" {
		msg = label + ": " + msg
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: msg, Class: class})
}

// err returns the problems found so far, joined in line order.
func (p *parser) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(p.errs, func(a, b *Error) int { return a.Line - b.Line })
	errs := make([]error, len(p.errs))
	for i, e := range p.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// document returns the root mapping of the single YAML document in data, or
// nil after recording why there is none.
func (p *parser) document(data []byte) *yaml.Node {
	return yamlcheck.Root(data, "the catalogue", "a mapping with connector_groups and apps", p.report(""))
}

// report returns a yamlcheck.Report that records problems under label.
func (p *parser) report(label string) yamlcheck.Report {
	return func(line int, class error, msg string) { p.add(line, class, label, "%s", msg) }
}

func (p *parser) root(root *yaml.Node) (groups []*groupEntry, apps []*appEntry) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := resolve(root.Content[i]); k.Kind == yaml.ScalarNode && k.Value == "home_tenant" {
			p.homeTenant = p.tenant(resolve(root.Content[i+1]), "", "home_tenant")
		}
	}
	p.rootBearer(root)
	p.mapping(root, "", []field{
		{Key: "connector_groups", Required: true, Decode: func(v *yaml.Node) {
			p.list(v, "connector_groups", "connector group", func(i int, item *yaml.Node) {
				groups = append(groups, p.group(item, i))
			})
		}},
		{Key: "apps", Required: true, Decode: func(v *yaml.Node) {
			p.list(v, "apps", "app", func(i int, item *yaml.Node) {
				apps = append(apps, p.app(item, i))
			})
		}},
		{Key: "home_tenant", Decode: func(*yaml.Node) {}}, // decoded above
		{Key: "entra", Decode: func(*yaml.Node) {}},       // decoded above
		{Key: "issuers", Decode: func(*yaml.Node) {}},     // decoded above
	})
	return groups, apps
}

func (p *parser) group(n *yaml.Node, i int) *groupEntry {
	e := &groupEntry{label: labelOf(n, "connector group", i), group: &ConnectorGroup{Line: n.Line}}
	g, label := e.group, e.label
	pinLine := n.Line
	p.mapping(n, label, []field{
		{Key: "id", Required: true, Decode: func(v *yaml.Node) { g.ID, e.idLine = p.id(v, label, "id"), v.Line }},
		{Key: "region", Decode: func(v *yaml.Node) { g.Region = p.id(v, label, "region") }},
		{Key: "pin_region", Decode: func(v *yaml.Node) { g.PinRegion, _ = p.boolean(v, label, "pin_region"); pinLine = v.Line }},
		{Key: "exclude_regions", Decode: func(v *yaml.Node) { g.ExcludeRegions = p.names(v, label, "exclude_regions") }},
		{Key: "workload_enrollment", Decode: func(v *yaml.Node) { g.Workload = p.workloadEnrollment(v, label) }},
	})
	if g.PinRegion && g.Region == "" {
		p.add(pinLine, ErrValue, label, "pin_region: needs the group's region to pin to")
	}
	if g.Region != "" && slices.Contains(g.ExcludeRegions, g.Region) {
		p.add(pinLine, ErrValue, label, "exclude_regions: excludes the group's own region %s", g.Region)
	}
	return e
}

func (p *parser) app(n *yaml.Node, i int) *appEntry {
	e := &appEntry{label: labelOf(n, "app", i), app: &App{
		Line:           n.Line,
		Kind:           KindWeb,
		BackendTimeout: DefaultBackendTimeout,
		HostHeader:     HostHeaderInternal,
		HSTS:           DefaultHSTS,
	}}
	a, label := e.app, e.label
	var skipLine int
	auth := &authKeys{lines: map[string]int{}, headerLines: map[string]int{}}
	fields := append([]field{
		{Key: "id", Required: true, Decode: func(v *yaml.Node) { a.ID, e.idLine = p.id(v, label, "id"), v.Line }},
		{Key: "display_name", Decode: func(v *yaml.Node) { a.DisplayName = p.displayName(v, label) }},
		{Key: "host", Required: true, Decode: func(v *yaml.Node) { a.Host, e.hostLine = p.host(v, label), v.Line }},
		{Key: "kind", Decode: func(v *yaml.Node) { a.Kind = p.kind(v, label) }},
		{Key: "internal_url", Decode: func(v *yaml.Node) { a.InternalURL = p.internalURL(v, label) }},
		{Key: "target", Decode: func(v *yaml.Node) { a.Target = p.tcpTarget(v, label) }},
		{Key: "bearer", Decode: func(v *yaml.Node) { auth.bearer = p.bearer(v, label) }},
		{Key: "connector_group", Required: true, Decode: func(v *yaml.Node) {
			var ok bool
			if a.ConnectorGroup, ok = p.str(v, label, "connector_group"); ok {
				e.groupLine = v.Line // checked against the groups once all are known
			}
		}},
		{Key: "preauth", Required: true, Decode: func(v *yaml.Node) { a.PreAuth = p.preAuth(v, label) }},
		{Key: "backend_timeout", Decode: func(v *yaml.Node) { a.BackendTimeout = p.timeout(v, label, "backend_timeout") }},
		{Key: "host_header", Decode: func(v *yaml.Node) { a.HostHeader = p.hostHeader(v, label) }},
		{Key: "tls_skip_verify", Decode: func(v *yaml.Node) {
			a.TLSSkipVerify, _ = p.boolean(v, label, "tls_skip_verify")
			skipLine = v.Line
		}},
		{Key: "trust_trace_headers", Decode: func(v *yaml.Node) {
			a.TrustTraceHeaders, _ = p.boolean(v, label, "trust_trace_headers")
		}},
		{Key: "hsts_max_age", Decode: func(v *yaml.Node) { a.HSTS = p.hsts(v, label) }},
		{Key: "pass_headers", Decode: func(v *yaml.Node) { auth.passLine, a.PassHeaders = v.Line, p.passHeaders(v, label) }},
	}, p.authFields(a, auth, label)...)
	keyLines := make(map[string]int, len(fields))
	for i := range fields {
		f := &fields[i]
		decode, key := f.Decode, f.Key
		f.Decode = func(v *yaml.Node) { keyLines[key] = v.Line; decode(v) }
	}
	p.mapping(n, label, fields)
	p.finishKind(a, keyLines, n.Line, label)
	p.finishAuth(a, auth, label)
	if a.TLSSkipVerify && a.InternalURL != nil && a.InternalURL.Scheme != "https" {
		p.add(skipLine, ErrValue, label, "tls_skip_verify: only allowed with an https internal_url, got %s", a.InternalURL.Scheme)
	}
	return e
}

// crossCheck reports duplicate app ids and hosts, duplicate group ids and
// apps whose connector group is not defined.
func (p *parser) crossCheck(groups []*groupEntry, apps []*appEntry) {
	groupLines := make(map[string]int, len(groups))
	for _, e := range groups {
		id := e.group.ID
		if id == "" {
			continue
		}
		if first, dup := groupLines[id]; dup {
			p.add(e.idLine, ErrDuplicate, e.label, "id already used at line %d", first)
			continue
		}
		groupLines[id] = e.idLine
	}
	ids := make(map[string]int, len(apps))
	hosts := make(map[string]*appEntry, len(apps))
	for _, e := range apps {
		a := e.app
		if a.ID != "" {
			if first, dup := ids[a.ID]; dup {
				p.add(e.idLine, ErrDuplicate, e.label, "id already used at line %d", first)
			} else {
				ids[a.ID] = e.idLine
			}
		}
		if a.Host != "" {
			if first, dup := hosts[a.Host]; dup {
				p.add(e.hostLine, ErrDuplicate, e.label, "host %q already used by %s at line %d", a.Host, first.label, first.hostLine)
			} else {
				hosts[a.Host] = e
			}
		}
		if _, ok := groupLines[a.ConnectorGroup]; !ok && e.groupLine > 0 {
			p.add(e.groupLine, ErrUnknownGroup, e.label, "connector_group %q: %s", a.ConnectorGroup, knownGroups(groups))
		}
	}
}

func knownGroups(groups []*groupEntry) string {
	ids := make([]string, 0, len(groups))
	for _, e := range groups {
		if e.group.ID != "" {
			ids = append(ids, e.group.ID)
		}
	}
	if len(ids) == 0 {
		return "no such connector group (none are defined)"
	}
	return "no such connector group (defined: " + strings.Join(ids, ", ") + ")"
}

// mapping decodes the mapping m field by field in document order, reporting
// a non-mapping, unknown and repeated keys, and missing required keys.
func (p *parser) mapping(m *yaml.Node, label string, fields []field) {
	yamlcheck.Mapping(m, fields, p.report(label))
}

// list calls each for every item of the sequence v; a null value is an empty
// list. Items must be mappings; kind names them in messages.
func (p *parser) list(v *yaml.Node, key, kind string, each func(i int, item *yaml.Node)) {
	if isNull(v) {
		return
	}
	if v.Kind != yaml.SequenceNode {
		p.add(v.Line, ErrType, "", "%s: got %s, want a list", key, describe(v))
		return
	}
	for i, item := range v.Content {
		item = resolve(item)
		if item.Kind != yaml.MappingNode {
			p.add(item.Line, ErrType, "", "%s #%d: got %s, want a mapping", kind, i+1, describe(item))
			continue
		}
		each(i, item)
	}
}

// str returns the scalar v as a string. Numbers are accepted as their
// literal text (an id may be all digits); booleans and null are type errors.
func (p *parser) str(v *yaml.Node, label, key string) (string, bool) {
	if v.Kind == yaml.ScalarNode {
		switch v.ShortTag() {
		case "!!str", "!!int", "!!float":
			return v.Value, true
		}
	}
	p.add(v.Line, ErrType, label, "%s: got %s, want a string", key, describe(v))
	return "", false
}

func (p *parser) boolean(v *yaml.Node, label, key string) (bool, bool) {
	var b bool
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!bool" && v.Decode(&b) == nil {
		return b, true
	}
	p.add(v.Line, ErrType, label, "%s: got %s, want true or false", key, describe(v))
	return false, false
}

// maxDisplayName bounds display_name, in characters.
const maxDisplayName = 80

// displayName returns v if it is a usable display name: 1 to 80
// characters, printable, no leading or trailing space; else "" after
// reporting.
func (p *parser) displayName(v *yaml.Node, label string) string {
	s, ok := p.str(v, label, "display_name")
	if !ok {
		return ""
	}
	switch n := utf8.RuneCountInString(s); {
	case !utf8.ValidString(s):
		p.add(v.Line, ErrValue, label, "display_name: not valid UTF-8")
	case n == 0 || n > maxDisplayName:
		p.add(v.Line, ErrValue, label, "display_name: got %d characters, want 1 to %d", n, maxDisplayName)
	case strings.TrimSpace(s) != s:
		p.add(v.Line, ErrValue, label, "display_name: %q has leading or trailing space", s)
	case strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		p.add(v.Line, ErrValue, label, "display_name: %q holds a control or unprintable character", s)
	default:
		return s
	}
	return ""
}

// id returns v if it is a valid id (a DNS label), else "" after reporting.
func (p *parser) id(v *yaml.Node, label, key string) string {
	return p.checked(v, label, key, validLabel, "must be 1 to 63 lower-case letters, digits or hyphens, starting and ending with a letter or digit")
}

// checked returns the string v if valid accepts it, else "" after
// reporting why, in the words of want.
func (p *parser) checked(v *yaml.Node, label, key string, valid func(string) bool, want string) string {
	s, ok := p.str(v, label, key)
	if !ok {
		return ""
	}
	if !valid(s) {
		p.add(v.Line, ErrValue, label, "%s %q: %s", key, s, want)
		return ""
	}
	return s
}

func (p *parser) host(v *yaml.Node, label string) string {
	s, ok := p.str(v, label, "host")
	if !ok {
		return ""
	}
	h, reason := normalizeHost(s)
	if reason != "" {
		p.add(v.Line, ErrValue, label, "host %q: %s", s, reason)
		return ""
	}
	return h
}

func (p *parser) internalURL(v *yaml.Node, label string) *url.URL {
	s, ok := p.str(v, label, "internal_url")
	if !ok {
		return nil
	}
	u, reason := parseInternalURL(s)
	if reason != "" {
		p.add(v.Line, ErrValue, label, "internal_url %q: %s", redactURL(s, u), reason)
		return nil
	}
	return u
}

func (p *parser) preAuth(v *yaml.Node, label string) PreAuth {
	s, ok := p.str(v, label, "preauth")
	if !ok {
		return ""
	}
	m := PreAuth(s)
	if msg, class := m.check(); class != nil {
		p.add(v.Line, class, label, "%s", msg)
		return ""
	}
	return m
}

func (p *parser) timeout(v *yaml.Node, label, key string) time.Duration {
	s, ok := p.str(v, label, key)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.add(v.Line, ErrValue, label, "%s %q: not a duration: want a number with a unit, such as 85s or 2m", key, s)
	case d <= 0:
		p.add(v.Line, ErrValue, label, "%s %q: must be greater than zero", key, s)
	}
	return d
}

func (p *parser) hostHeader(v *yaml.Node, label string) HostHeader {
	s, ok := p.str(v, label, "host_header")
	if !ok {
		return ""
	}
	switch h := HostHeader(s); h {
	case HostHeaderInternal, HostHeaderExternal:
		return h
	}
	p.add(v.Line, ErrValue, label, "host_header %q: must be %s or %s", s, HostHeaderInternal, HostHeaderExternal)
	return ""
}

// labelOf names a list item in messages: `app "x"` when it has a string id,
// else `app #3` (1-based).
func labelOf(n *yaml.Node, kind string, i int) string {
	if n != nil && n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			k, v := resolve(n.Content[j]), resolve(n.Content[j+1])
			if k.Value == "id" && v.Kind == yaml.ScalarNode && v.Value != "" && !isNull(v) {
				return fmt.Sprintf("%s %q", kind, v.Value)
			}
		}
	}
	return fmt.Sprintf("%s #%d", kind, i+1)
}

func resolve(n *yaml.Node) *yaml.Node { return yamlcheck.Resolve(n) }

func isNull(n *yaml.Node) bool { return yamlcheck.IsNull(n) }

func describe(n *yaml.Node) string { return yamlcheck.Describe(n) }
