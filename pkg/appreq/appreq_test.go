package appreq

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/nodecred"
	"github.com/postern/postern/pkg/wgkey"
)

const aud = "https://auth.example.com"

var t0 = time.Unix(1_800_000_000, 0)

// node is a mesh node's signing identity under some authority.
type node struct {
	key  ed25519.PrivateKey
	cred nodecred.Credential
}

func newEd(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newNode(t testing.TB, authority ed25519.PrivateKey, id string) node {
	t.Helper()
	nk := newEd(t)
	var wg wgkey.Public
	rand.Read(wg[:])
	c, err := nodecred.Encode(authority.Public().(ed25519.PublicKey), func(m []byte) []byte { return ed25519.Sign(authority, m) },
		id, "eu-west-1", wg, nk.Public().(ed25519.PublicKey), t0.Add(-time.Hour), t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return node{key: nk, cred: c}
}

func (n node) signer(t testing.TB, now time.Time, audience string) *Signer {
	t.Helper()
	s, err := NewSigner(SignerConfig{Credential: n.cred, Sign: func(m []byte) []byte { return ed25519.Sign(n.key, m) },
		Audience: audience, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func binding() string {
	sum := sha256.Sum256([]byte("nonce"))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func sample() Request {
	return Request{AppID: "smartmoney", Host: "smartmoney.apps.example.com", ReturnPath: "/admin?x=1", Binding: binding(),
		Groups: []string{"g1"}, Roles: []string{"Admin"}, ACRs: []string{"c1"}, MaxAge: 3600, Lifetime: 8 * 3600,
		SessionFilter: NewFilter([]string{"g1", "g2"}, []string{"Admin"}), NoticeLifetime: 12 * 3600}
}

func verifier(t testing.TB, now *time.Time, keys ...ed25519.PrivateKey) *Verifier {
	t.Helper()
	var pubs []ed25519.PublicKey
	for _, k := range keys {
		pubs = append(pubs, k.Public().(ed25519.PublicKey))
	}
	v, err := NewVerifier(VerifierConfig{AuthorityKeys: pubs, Audience: aud, Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRoundTrip signs a request at one node and verifies it at the auth
// functions, with every field intact.
func TestRoundTrip(t *testing.T) {
	auth := newEd(t)
	n := newNode(t, auth, "mesh-eu-1")
	tok, err := n.signer(t, t0, aud+"/").Sign(sample())
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Minute)
	got, err := verifier(t, &now, newEd(t), auth).Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	want := sample()
	want.Node, want.Audience, want.IssuedAt, want.Expiry, want.Credential = "mesh-eu-1", aud, t0.Unix(), t0.Add(DefaultLifetime).Unix(), n.cred.String()
	if a, b := mustJSON(t, got), mustJSON(t, want); a != b {
		t.Errorf("got %s\nwant %s", a, b)
	}
	if len(tok) > 2048 {
		t.Errorf("a typical request is %d bytes, want under 2 KB", len(tok))
	}
}

func mustJSON(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRefused is the hostile table: every way to change, forge, replay or
// redirect a request is refused with its class of error.
func TestRefused(t *testing.T) {
	auth, otherAuth := newEd(t), newEd(t)
	n := newNode(t, auth, "mesh-eu-1")
	other := newNode(t, auth, "mesh-us-1")
	foreign := newNode(t, otherAuth, "mesh-eu-1")
	good, err := n.signer(t, t0, aud).Sign(sample())
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	// resign builds a token from a payload edit, signed by key k.
	resign := func(hdr string, edit func(r *Request), k ed25519.PrivateKey) string {
		var r Request
		p, _ := base64.RawURLEncoding.DecodeString(parts[1])
		json.Unmarshal(p, &r)
		edit(&r)
		b, _ := json.Marshal(r)
		in := hdr + "." + base64.RawURLEncoding.EncodeToString(b)
		return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(k, []byte(in)))
	}
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	same := func(*Request) {}
	tests := []struct {
		name string
		tok  string
		at   time.Duration // after t0
		want error
	}{
		{"good at once", good, 0, nil},
		{"good at the end of its window, within the skew", good, DefaultLifetime + DefaultSkew - time.Second, nil},
		{"replay after its window", good, DefaultLifetime + DefaultSkew, ErrExpired},
		{"replay a day later", good, 24 * time.Hour, ErrExpired},
		{"issued in the future", good, -time.Minute, ErrExpired},
		{"tampered payload", parts[0] + "." + enc(strings.Replace(string(mustDecode(parts[1])), "smartmoney.apps", "evil.apps", 1)) + "." + parts[2], 0, ErrSignature},
		{"host swapped and re-signed by another node's key", resign(parts[0], func(r *Request) { r.Host = "evil.example.com" }, other.key), 0, ErrSignature},
		{"binding swapped, signed by the node's key under another node's credential", resign(parts[0], func(r *Request) { r.Credential = other.cred.String() }, n.key), 0, ErrSignature},
		{"iss names another node", resign(parts[0], func(r *Request) { r.Node = "mesh-us-1" }, n.key), 0, ErrSignature},
		{"credential of another mesh's authority", resign(parts[0], func(r *Request) { r.Credential = foreign.cred.String() }, foreign.key), 0, ErrCredential},
		{"no credential", resign(parts[0], func(r *Request) { r.Credential = "" }, n.key), 0, ErrCredential},
		{"for other auth functions", resign(parts[0], func(r *Request) { r.Audience = "https://auth.evil.com" }, n.key), 0, ErrAudience},
		{"valid for an hour", resign(parts[0], func(r *Request) { r.Expiry = r.IssuedAt + 3600 }, n.key), 0, ErrExpired},
		{"exp before iat", resign(parts[0], func(r *Request) { r.Expiry = r.IssuedAt - 1 }, n.key), 0, ErrExpired},
		{"rd to another host", resign(parts[0], func(r *Request) { r.ReturnPath = "//evil.com/x" }, n.key), 0, ErrMalformed},
		{"rd encoded to another host", resign(parts[0], func(r *Request) { r.ReturnPath = "/%2F%2Fevil.com" }, n.key), 0, ErrMalformed},
		{"rd absolute URL", resign(parts[0], func(r *Request) { r.ReturnPath = "https://evil.com/" }, n.key), 0, ErrMalformed},
		{"binding not a hash", resign(parts[0], func(r *Request) { r.Binding = "abc" }, n.key), 0, ErrMalformed},
		{"host with a port", resign(parts[0], func(r *Request) { r.Host = "app.example.com:8443" }, n.key), 0, ErrMalformed},
		{"host upper case", resign(parts[0], func(r *Request) { r.Host = "App.example.com" }, n.key), 0, ErrMalformed},
		{"lifetime of a year", resign(parts[0], func(r *Request) { r.Lifetime = 366 * 86400 }, n.key), 0, ErrMalformed},
		{"no lifetime", resign(parts[0], func(r *Request) { r.Lifetime = 0 }, n.key), 0, ErrMalformed},
		{"control character in a group", resign(parts[0], func(r *Request) { r.Groups = []string{"a\nb"} }, n.key), 0, ErrMalformed},
		{"filter unsorted", resign(parts[0], func(r *Request) { r.SessionFilter = enc("bbbbbbbbaaaaaaaa") }, n.key), 0, ErrMalformed},
		{"alg none", enc(`{"alg":"none","typ":"`+Type+`"}`) + "." + parts[1] + ".", 0, ErrMalformed},
		{"other typ", resign(enc(`{"alg":"EdDSA","typ":"postern-app+jwt"}`), same, n.key), 0, ErrMalformed},
		{"extra header", resign(enc(`{"alg":"EdDSA","typ":"`+Type+`","jku":"https://evil.com"}`), same, n.key), 0, ErrMalformed},
		{"two parts", parts[0] + "." + parts[1], 0, ErrMalformed},
		{"oversized", good + strings.Repeat("A", MaxSize), 0, ErrMalformed},
		{"empty", "", 0, ErrMalformed},
		{"trailing JSON", parts[0] + "." + enc(string(mustDecode(parts[1]))+"{}") + "." + parts[2], 0, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := t0.Add(tt.at)
			_, err := verifier(t, &now, auth).Verify(tt.tok)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), tt.tok[:min(len(tt.tok), 40)]) && tt.tok != "" {
				t.Errorf("error quotes the request: %v", err)
			}
		})
	}
}

// TestCLIPort: a command-line sign-in's loopback port travels signed, and
// only a port a user's program can listen on (1024-65535), as a JSON
// integer, with a binding and a return path, is accepted.
func TestCLIPort(t *testing.T) {
	auth := newEd(t)
	n := newNode(t, auth, "mesh-eu-1")
	now := t0
	v := verifier(t, &now, auth)
	for _, port := range []int{MinCLIPort, 40000, 65535} {
		r := sample()
		r.CLIPort = port
		tok, err := n.signer(t, t0, aud).Sign(r)
		if err != nil {
			t.Fatalf("sign cli %d: %v", port, err)
		}
		if got, err := v.Verify(tok); err != nil || got.CLIPort != port {
			t.Errorf("cli %d: got %v, %v", port, got, err)
		}
	}
	// The signer refuses what the verifier refuses.
	for name, edit := range map[string]func(*Request){
		"privileged port":  func(r *Request) { r.CLIPort = 80 },
		"port 1023":        func(r *Request) { r.CLIPort = MinCLIPort - 1 },
		"negative port":    func(r *Request) { r.CLIPort = -1 },
		"port 65536":       func(r *Request) { r.CLIPort = 65536 },
		"port 65536+40000": func(r *Request) { r.CLIPort = 65536 + 40000 },
		"no binding":       func(r *Request) { r.CLIPort, r.Binding = 40000, "" },
		"no return path":   func(r *Request) { r.CLIPort, r.ReturnPath = 40000, "" },
	} {
		r := sample()
		edit(&r)
		if _, err := n.signer(t, t0, aud).Sign(r); !errors.Is(err, ErrMalformed) {
			t.Errorf("sign, %s: got %v, want ErrMalformed", name, err)
		}
	}
	// Payloads a signer never makes, signed by the node's key: every one
	// is refused.
	good, err := json.Marshal(func() Request {
		r := sample()
		r.Node, r.Audience, r.Credential, r.IssuedAt, r.Expiry = "mesh-eu-1", aud, n.cred.String(), t0.Unix(), t0.Add(time.Minute).Unix()
		return r
	}())
	if err != nil {
		t.Fatal(err)
	}
	base := strings.TrimSuffix(string(good), "}")
	for _, cli := range []string{`"40000"`, `40000.5`, `4e4`, `true`, `[40000]`, `{"port":40000}`, `null,"cli":80`} {
		in := header + "." + base64.RawURLEncoding.EncodeToString([]byte(base+`,"cli":`+cli+`}`))
		tok := in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(n.key, []byte(in)))
		if _, err := v.Verify(tok); !errors.Is(err, ErrMalformed) {
			t.Errorf("cli %s: got %v, want ErrMalformed", cli, err)
		}
	}
}

func mustDecode(s string) []byte {
	b, _ := base64.RawURLEncoding.DecodeString(s)
	return b
}

// TestSignerRefusesBadRequests keeps a node from signing what the
// functions would refuse.
func TestSignerRefusesBadRequests(t *testing.T) {
	n := newNode(t, newEd(t), "mesh-eu-1")
	r := sample()
	r.ReturnPath = "//evil.com"
	if _, err := n.signer(t, t0, aud).Sign(r); !errors.Is(err, ErrMalformed) {
		t.Errorf("got %v, want ErrMalformed", err)
	}
	if _, err := NewSigner(SignerConfig{Credential: n.cred, Sign: func(m []byte) []byte { return nil }, Audience: aud, Lifetime: time.Hour}); err == nil {
		t.Error("a signer with a lifetime of an hour was accepted")
	}
}

// TestFilter keeps exactly the named groups and roles, kinds apart.
func TestFilter(t *testing.T) {
	f, err := ParseFilter(NewFilter([]string{"g1", "g2", "g1"}, []string{"Admin"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Groups([]string{"g0", "g1", "g2", "Admin"}); !slices.Equal(got, []string{"g1", "g2"}) {
		t.Errorf("groups: got %v", got)
	}
	if got := f.Roles([]string{"g1", "Admin", "User"}); !slices.Equal(got, []string{"Admin"}) {
		t.Errorf("roles: got %v", got)
	}
	empty, err := ParseFilter("")
	if err != nil || empty.Groups([]string{"g1"}) != nil {
		t.Errorf("empty filter: %v %v", err, empty.Groups([]string{"g1"}))
	}
	if Digest(NewFilter([]string{"g1"}, nil)) == Digest(NewFilter(nil, []string{"g1"})) {
		t.Error("a group and a role of the same name have the same digest")
	}
	var many []string
	for i := range 200 {
		many = append(many, strings.Repeat("x", 30)+string(rune('a'+i%26))+strings.Repeat("y", i/26))
	}
	if n := len(NewFilter(many, nil)); n > 2200 {
		t.Errorf("200 groups take %d bytes, want about 2134", n)
	}
}
