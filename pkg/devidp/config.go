package devidp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Demo identifiers used by testdata/users.yaml, so that catalogue policies
// and tests can name them.
const (
	// DemoTenantID is the tenant of the demo users and, with Listen, the
	// default tenant in the issuer path.
	DemoTenantID = "3f6c1a2e-8b4d-4c7e-9a15-0d2b7e6f4c81"
	// DemoOtherTenantID is a second tenant: the home tenant of the demo
	// guest and the tenant of the demo user of a foreign organisation.
	DemoOtherTenantID = "b7d41e90-2c3a-4f6b-8e57-91a0c4d2e3f6"
	// DemoSupportGroupID is the object id of the demo group
	// "SmartMoney-Support".
	DemoSupportGroupID = "5b9e3c51-6f0e-4d47-9e7a-1c2d3e4f5a61"
)

// MaxTokenGroups is Entra's limit on the number of groups in a JWT: a user
// in more groups gets the overage claims instead of "groups".
const MaxTokenGroups = 200

// Config configures a Provider.
type Config struct {
	// Issuer is the full issuer URL, e.g.
	// "https://idp.localhost:8444/<tenant id>/v2.0" to emulate Entra. It
	// must be https and may have a path; discovery is served at
	// Issuer + "/.well-known/openid-configuration". When the path has the
	// Entra shape "/<tenant>/v2.0", every other tenant that a user belongs
	// to is served too, at "/<other tenant>/v2.0". Empty is an error for New;
	// Listen fills it in (see Listen).
	Issuer string
	// Users are the users offered on the login page. Empty means only those
	// of UsersFile.
	Users []User
	// UsersFile is a YAML file of users ("users:" list, see
	// testdata/users.yaml), added to Users. Empty means none.
	UsersFile string
	// Clients are the registered relying parties; more can be added with
	// Provider.AddClient. Empty means none yet.
	Clients []Client
	// APIs are the registered web APIs the provider issues access tokens
	// for (delegated and app-only); empty means none (only Microsoft
	// Graph).
	APIs []API
	// TokenLifetime is the lifetime of ID and access tokens; zero means one
	// hour, Entra's default.
	TokenLifetime time.Duration
	// Logger receives request logs; nil discards.
	Logger *slog.Logger
	// Now is the clock for issuing and verifying tokens; nil means
	// time.Now.
	Now func() time.Time
}

// User is a test user. The login page lists the users of the tenant whose
// authorization endpoint was called.
type User struct {
	// Login is the short handle shown on the login page and used as the
	// button's data-user attribute (chromedp clicks
	// `button[data-user="alice"]`); empty means the part of Username
	// before "@".
	Login string `yaml:"login"`
	// ObjectID is the user's object id (oid claim). Required.
	ObjectID string `yaml:"oid"`
	// TenantID is the tenant the token is issued for (tid claim); empty
	// means the tenant of Config.Issuer. For a B2B guest it is the resource
	// tenant, and HomeTenantID names the guest's own tenant.
	TenantID string `yaml:"tid"`
	// HomeTenantID is set for B2B guests: the tenant the user comes from.
	// The ID token then carries idp = "https://sts.windows.net/<home>/",
	// as Entra does for guests. Empty means a member.
	HomeTenantID string `yaml:"home_tid"`
	// Username is the UPN or sign-in name (preferred_username). Required.
	Username string `yaml:"username"`
	// Name is the display name (name claim); empty omits it.
	Name string `yaml:"name"`
	// Email is the mail address (email claim); empty omits it.
	Email string `yaml:"email"`
	// Groups are group object ids.
	Groups []string `yaml:"groups"`
	// ExtraGroups adds that many synthetic, deterministic group object ids
	// after Groups (to test group overage); zero adds none.
	ExtraGroups int `yaml:"extra_groups"`
	// Roles are app role values (roles claim).
	Roles []string `yaml:"roles"`
	// ACRs are the authentication context ids this user can satisfy (for
	// example "c1"); an ID token carries those requested through the
	// claims parameter that the user can satisfy.
	ACRs []string `yaml:"acrs"`
}

// Client is a registered relying party (an app registration).
type Client struct {
	// ID is the client id (aud of ID tokens). Required.
	ID string
	// Secret is the client secret; empty makes a public client (PKCE
	// only, no client authentication).
	Secret string
	// RedirectURIs are the exact redirect URIs allowed. At least one is
	// required, except for a confidential client (with a Secret) that
	// only uses the client-credentials grant (a daemon).
	RedirectURIs []string
	// ObjectID is the object id of the client's service principal: the
	// oid and sub of its app-only tokens. Empty derives a stable GUID
	// from ID.
	ObjectID string
	// AppRoles are the application permissions granted to the client:
	// by API client id, the app role values of its app-only tokens for
	// that API. Empty grants none (the token then has no roles).
	AppRoles map[string][]string
	// PostLogoutRedirectURIs are the exact URIs the end-session endpoint
	// may redirect to; empty means it only shows its signed-out page.
	PostLogoutRedirectURIs []string
}

type usersFile struct {
	Users []User `yaml:"users"`
}

// LoadUsers reads a YAML users file ("users:" list of User).
func LoadUsers(path string) ([]User, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("devidp: load users: %w", err)
	}
	users, err := parseUsers(data)
	if err != nil {
		return nil, fmt.Errorf("devidp: load users %s: %w", path, err)
	}
	return users, nil
}

// parseUsers decodes a users file strictly: an unknown key is an error.
func parseUsers(data []byte) ([]User, error) {
	var f usersFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	return f.Users, nil
}

// issuerShape splits an Entra-shaped issuer "https://host/<tenant>/v2.0"
// into its base URL and tenant; ok is false for any other shape.
func issuerShape(issuer string) (base, tenant string, ok bool) {
	u, err := url.Parse(issuer)
	if err != nil {
		return "", "", false
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 2 || parts[1] != "v2.0" || parts[0] == "" {
		return "", "", false
	}
	return u.Scheme + "://" + u.Host, parts[0], true
}

// validate checks the config and returns the users with defaults applied.
func (c *Config) validate() ([]User, error) {
	u, err := url.Parse(c.Issuer)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(u.Path, "/") {
		return nil, fmt.Errorf("%w: issuer %q must be an https URL without query, fragment or trailing slash", ErrBadConfig, c.Issuer)
	}
	users := append([]User(nil), c.Users...)
	if c.UsersFile != "" {
		more, err := LoadUsers(c.UsersFile)
		if err != nil {
			return nil, err
		}
		users = append(users, more...)
	}
	_, defTenant, entra := issuerShape(c.Issuer)
	seenLogin := map[string]bool{}
	seenOID := map[string]bool{}
	for i := range users {
		u := &users[i]
		if u.ObjectID == "" || u.Username == "" {
			return nil, fmt.Errorf("%w: user %d needs oid and username", ErrBadConfig, i)
		}
		if u.Login == "" {
			u.Login, _, _ = strings.Cut(u.Username, "@")
		}
		if u.TenantID == "" {
			u.TenantID = defTenant
		}
		if !entra && u.TenantID != defTenant {
			return nil, fmt.Errorf("%w: user %q has tenant %q but the issuer has no tenant path", ErrBadConfig, u.Login, u.TenantID)
		}
		if strings.ContainsAny(u.TenantID, "/?#%") || strings.ContainsAny(u.HomeTenantID, "/?#%") {
			return nil, fmt.Errorf("%w: user %q: bad tenant id", ErrBadConfig, u.Login)
		}
		if seenLogin[u.Login] || seenOID[u.ObjectID] {
			return nil, fmt.Errorf("%w: duplicate user %q", ErrBadConfig, u.Login)
		}
		if u.ExtraGroups < 0 || u.ExtraGroups > 10000 {
			return nil, fmt.Errorf("%w: user %q: extra_groups must be 0..10000", ErrBadConfig, u.Login)
		}
		seenLogin[u.Login], seenOID[u.ObjectID] = true, true
		u.Groups = append(append([]string(nil), u.Groups...), syntheticGroups(u.ObjectID, u.ExtraGroups)...)
		u.ExtraGroups = 0
	}
	return users, nil
}

// syntheticGroups returns n deterministic GUID-shaped group ids for oid.
func syntheticGroups(oid string, n int) []string {
	out := make([]string, n)
	for i := range out {
		h := sha256.Sum256(fmt.Appendf(nil, "devidp-group/%s/%d", oid, i))
		x := hex.EncodeToString(h[:16])
		out[i] = x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
	}
	return out
}

// validate checks a client registration.
func (c *Client) validate() error {
	if c.ID == "" || (len(c.RedirectURIs) == 0 && c.Secret == "") {
		return fmt.Errorf("%w: client needs an id and a redirect uri (or a secret, for a daemon)", ErrBadConfig)
	}
	for _, raw := range append(append([]string(nil), c.RedirectURIs...), c.PostLogoutRedirectURIs...) {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
			return fmt.Errorf("%w: client %q: bad uri %q", ErrBadConfig, c.ID, raw)
		}
	}
	return nil
}
