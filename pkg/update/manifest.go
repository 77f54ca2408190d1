package update

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Errors of Verify and Stage.
var (
	// ErrSignature means the manifest is not signed by a pinned key.
	ErrSignature = errors.New("release manifest signature invalid")
	// ErrMalformed means the manifest or its envelope is ill-formed.
	ErrMalformed = errors.New("release manifest malformed")
	// ErrArtifact means a download does not match the manifest.
	ErrArtifact = errors.New("release artifact does not match the manifest")
)

// signatureContext prefixes the signed bytes, so that a release key's
// signature is valid for nothing else.
const signatureContext = "postern release manifest v1\x00"

// Manifest describes one release of one product.
type Manifest struct {
	// Product is the binary, such as "connectord".
	Product string `json:"product"`
	// Version is the release's semantic version, such as "1.4.0".
	Version string `json:"version"`
	// Artifacts are the binaries by platform ("linux/amd64").
	Artifacts map[string]Artifact `json:"artifacts"`
}

// Artifact is one platform's binary.
type Artifact struct {
	// URL is where to download it (https, or http on loopback for tests).
	URL string `json:"url"`
	// SHA256 is its hex SHA-256.
	SHA256 string `json:"sha256"`
	// Size is its length in bytes.
	Size int64 `json:"size"`
}

// envelope is the signed file: the manifest's exact bytes and their
// signature.
type envelope struct {
	Manifest  string `json:"manifest"`
	Signature string `json:"signature"`
}

// Sign returns the signed manifest file of m.
func Sign(m Manifest, key ed25519.PrivateKey) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	sig := ed25519.Sign(key, append([]byte(signatureContext), b...))
	return json.MarshalIndent(envelope{Manifest: base64.StdEncoding.EncodeToString(b), Signature: base64.StdEncoding.EncodeToString(sig)}, "", "  ")
}

// maxManifest bounds a manifest file.
const maxManifest = 64 << 10

// Verify checks a signed manifest file against the pinned keys and
// returns the manifest.
func Verify(file []byte, keys []ed25519.PublicKey) (*Manifest, error) {
	if len(file) > maxManifest {
		return nil, fmt.Errorf("update: %w: over %d bytes", ErrMalformed, maxManifest)
	}
	var env envelope
	if err := json.Unmarshal(file, &env); err != nil {
		return nil, fmt.Errorf("update: %w: not a signed manifest", ErrMalformed)
	}
	b, err1 := base64.StdEncoding.DecodeString(env.Manifest)
	sig, err2 := base64.StdEncoding.DecodeString(env.Signature)
	if err1 != nil || err2 != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("update: %w: encoding", ErrMalformed)
	}
	signed := append([]byte(signatureContext), b...)
	ok := false
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, signed, sig) {
			ok = true
			break
		}
	}
	if !ok {
		return nil, fmt.Errorf("update: %w", ErrSignature)
	}
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("update: %w: %v", ErrMalformed, err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

var (
	versionRE  = regexp.MustCompile(`^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})(-[0-9A-Za-z.-]{1,64})?$`)
	productRE  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	platformRE = regexp.MustCompile(`^[a-z0-9]{1,16}/[a-z0-9]{1,16}$`)
	sha256RE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func (m *Manifest) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("update: %w: "+format, append([]any{ErrMalformed}, a...)...)
	}
	if !productRE.MatchString(m.Product) || !versionRE.MatchString(m.Version) || len(m.Artifacts) == 0 {
		return bad("product %.32q, version %.32q or artifacts", m.Product, m.Version)
	}
	for p, a := range m.Artifacts {
		if !platformRE.MatchString(p) || !sha256RE.MatchString(a.SHA256) || a.Size <= 0 || a.Size > 1<<30 {
			return bad("artifact %.32q", p)
		}
		if !strings.HasPrefix(a.URL, "https://") && !strings.HasPrefix(a.URL, "http://127.0.0.1:") {
			return bad("artifact %s: url must be https", p)
		}
	}
	return nil
}

// Compare compares semantic versions a and b (-1, 0, 1); a pre-release
// sorts before its release. Versions that do not parse compare as older
// than any that does.
func Compare(a, b string) int {
	pa, oka := parseVersion(a)
	pb, okb := parseVersion(b)
	switch {
	case !oka && !okb:
		return 0
	case !oka:
		return -1
	case !okb:
		return 1
	}
	for i := range 3 {
		if pa.n[i] != pb.n[i] {
			if pa.n[i] < pb.n[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case pa.pre == pb.pre:
		return 0
	case pa.pre == "":
		return 1
	case pb.pre == "":
		return -1
	case pa.pre < pb.pre:
		return -1
	}
	return 1
}

// ValidVersion reports whether s is a release version Compare orders
// (1.2.3, v1.2.3, 1.2.3-rc.1); a build without a version stamp (its
// version is "devel") cannot tell whether a release is newer.
func ValidVersion(s string) bool {
	_, ok := parseVersion(s)
	return ok
}

type version struct {
	n   [3]int
	pre string
}

func parseVersion(s string) (version, bool) {
	m := versionRE.FindStringSubmatch(strings.TrimPrefix(s, "v"))
	if m == nil {
		return version{}, false
	}
	var v version
	for i := range 3 {
		v.n[i], _ = strconv.Atoi(m[i+1])
	}
	v.pre = strings.TrimPrefix(m[4], "-")
	return v, true
}
