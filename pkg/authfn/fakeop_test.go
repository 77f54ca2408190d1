package authfn

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// fakeOP is a tiny OpenID provider for shapes the development provider
// cannot produce: it serves discovery (for any issuer path), a JWKS, a token
// endpoint that returns whatever ID token the test scripted for a code
// (checking PKCE, single use), and Graph's getMemberObjects.
type fakeOP struct {
	srv      *httptest.Server
	key      *rsa.PrivateKey
	otherKey *rsa.PrivateKey // same kid, not published

	mu         sync.Mutex // guards the following
	grants     map[string]*grant
	tokens     map[string]bool // access tokens issued
	graphCode  int             // status Graph answers; 0 means 200
	graphIDs   []string        // ids Graph returns
	graphCalls int
	noEndSess  bool
}

// grant is what the token endpoint answers for one code.
type grant struct {
	challenge string
	idToken   string
	used      bool
}

const fakeKID = "fake-key-1"

func newFakeOP(t testing.TB) *fakeOP {
	t.Helper()
	op := &fakeOP{grants: map[string]*grant{}, tokens: map[string]bool{}}
	var err error
	if op.key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if op.otherKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /keys", op.jwks)
	mux.HandleFunc("POST /oauth2/token", op.token)
	mux.HandleFunc("POST /v1.0/me/getMemberObjects", op.graph)
	mux.HandleFunc("GET /", op.discovery)
	op.srv = httptest.NewTLSServer(mux)
	t.Cleanup(op.srv.Close)
	return op
}

// URL is the provider's base URL.
func (op *fakeOP) URL() string { return op.srv.URL }

func (op *fakeOP) discovery(w http.ResponseWriter, r *http.Request) {
	prefix, ok := strings.CutSuffix(r.URL.Path, "/.well-known/openid-configuration")
	if !ok {
		http.NotFound(w, r)
		return
	}
	iss := op.srv.URL + prefix
	if prefix == "/organizations/v2.0" {
		iss = op.srv.URL + "/{tenantid}/v2.0"
	}
	meta := map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                op.srv.URL + "/oauth2/authorize",
		"token_endpoint":                        op.srv.URL + "/oauth2/token",
		"jwks_uri":                              op.srv.URL + "/keys",
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code"},
	}
	op.mu.Lock()
	if !op.noEndSess {
		meta["end_session_endpoint"] = op.srv.URL + "/oauth2/logout"
	}
	op.mu.Unlock()
	json.NewEncoder(w).Encode(meta)
}

func (op *fakeOP) jwks(w http.ResponseWriter, r *http.Request) {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &op.key.PublicKey, KeyID: fakeKID, Algorithm: "RS256", Use: "sig"}}}
	json.NewEncoder(w).Encode(set)
}

func (op *fakeOP) token(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	op.mu.Lock()
	defer op.mu.Unlock()
	g := op.grants[r.PostForm.Get("code")]
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	switch {
	case r.PostForm.Get("grant_type") != "authorization_code", g == nil, g.used,
		base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid_grant"}`))
		return
	}
	g.used = true
	at := "at-" + rand.Text()
	op.tokens[at] = true
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": 3600, "id_token": g.idToken})
}

func (op *fakeOP) graph(w http.ResponseWriter, r *http.Request) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.graphCalls++
	at, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !op.tokens[at] {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if op.graphCode != 0 && op.graphCode != 200 {
		w.WriteHeader(op.graphCode)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"value": op.graphIDs})
}

// issue registers a code that yields idToken when redeemed with the
// verifier whose S256 challenge is given.
func (op *fakeOP) issue(challenge, idToken string) string {
	code := "code-" + rand.Text()
	op.mu.Lock()
	op.grants[code] = &grant{challenge: challenge, idToken: idToken}
	op.mu.Unlock()
	return code
}

// sign signs claims as an RS256 JWT with the published key (or with a key
// that is not published, when wrongKey).
func (op *fakeOP) sign(t testing.TB, claims map[string]any, wrongKey bool) string {
	t.Helper()
	key := op.key
	if wrongKey {
		key = op.otherKey
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: fakeKID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unsigned returns claims as an "alg":"none" JWT.
func unsigned(claims map[string]any) string {
	payload, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString(payload) + "."
}
