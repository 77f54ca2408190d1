package enroll

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/postern/postern/pkg/wgkey"
)

// Proof of possession. A connector credential names a WireGuard public
// key; it goes only to the holder of the matching private key, and acting
// on it needs that key again:
//
//   - at enrolment the node seals the credential to the enrollee's key (a
//     sealed box: X25519 with an ephemeral key, XSalsa20-Poly1305), so a
//     token holder who names someone else's key gets nothing it can open;
//   - attach, detach and the stream carrier carry a proof: an HMAC, keyed
//     with the X25519 secret that only the connector's and this node's
//     private keys can compute, over the path, a timestamp, the credential
//     and the request's parameters. A stolen credential alone cannot
//     attach, detach or take over a live connector's stream.
//
// The connector learns each node's WireGuard key from its enrolment
// answer, from the node lists, or from a proof_required refusal.

// ProofSkew is how far a proof's timestamp may be from the node's clock.
const ProofSkew = 2 * time.Minute

// ErrProof means a proof is missing, malformed, stale or does not verify.
var ErrProof = errors.New("proof of possession failed")

// SealCredential seals credential to the WireGuard key to; only its
// private key opens it.
func SealCredential(credential string, to wgkey.Public) (string, error) {
	pub := [32]byte(to)
	out, err := box.SealAnonymous(nil, []byte(credential), &pub, rand.Reader)
	if err != nil {
		return "", fmt.Errorf("enroll: seal credential: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// OpenCredential opens a credential sealed to key's public key.
func OpenCredential(sealed string, key wgkey.Private) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil {
		return "", fmt.Errorf("enroll: open credential: not base64url: %w", ErrProof)
	}
	pub, priv := [32]byte(key.Public()), [32]byte(key)
	out, ok := box.OpenAnonymous(nil, b, &pub, &priv)
	if !ok {
		return "", fmt.Errorf("enroll: open credential: it was not sealed to this connector's key: %w", ErrProof)
	}
	return string(out), nil
}

// proofKey derives the MAC key of a connector and node pair from their
// X25519 secret; self is the caller's private key, peer the other's
// public key, connector the connector's public key.
func proofKey(self wgkey.Private, peer, connector wgkey.Public) ([]byte, error) {
	secret, err := self.Shared(peer)
	if err != nil {
		return nil, err
	}
	node := peer
	if node == connector {
		node = self.Public()
	}
	info := append(append([]byte("postern proof v1 "), connector[:]...), node[:]...)
	return hkdf.Key(sha256.New, secret[:], nil, string(info), 32)
}

// proofMAC is the MAC over a request's path, time, credential and extra
// parameters.
func proofMAC(key []byte, path string, ts int64, credential, extra string) []byte {
	credSum := sha256.Sum256([]byte(credential))
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s\n%d\n%x\n%s", path, ts, credSum, extra)
	return m.Sum(nil)
}

// Proof returns the connector's proof for a request to path carrying
// credential and extra (e.g. "drain=true"), at now, for the node with
// WireGuard key node: "<unix seconds>.<base64url MAC>".
func Proof(key wgkey.Private, node wgkey.Public, path string, now time.Time, credential, extra string) (string, error) {
	k, err := proofKey(key, node, key.Public())
	if err != nil {
		return "", fmt.Errorf("enroll: proof: %w", err)
	}
	ts := now.Unix()
	return strconv.FormatInt(ts, 10) + "." + base64.RawURLEncoding.EncodeToString(proofMAC(k, path, ts, credential, extra)), nil
}

// VerifyProof checks a proof made by the holder of the private key of
// connector for this node (nodeKey), within ProofSkew of now.
func VerifyProof(nodeKey wgkey.Private, connector wgkey.Public, proof, path string, now time.Time, credential, extra string) error {
	tsText, macText, ok := strings.Cut(proof, ".")
	if !ok || len(proof) > 128 {
		return fmt.Errorf("enroll: proof malformed: %w", ErrProof)
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("enroll: proof time malformed: %w", ErrProof)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > ProofSkew || d < -ProofSkew {
		return fmt.Errorf("enroll: proof made %v from now, beyond %v (check the connector's clock): %w", d.Round(time.Second), ProofSkew, ErrProof)
	}
	mac, err := base64.RawURLEncoding.DecodeString(macText)
	if err != nil {
		return fmt.Errorf("enroll: proof MAC malformed: %w", ErrProof)
	}
	k, err := proofKey(nodeKey, connector, connector)
	if err != nil {
		return fmt.Errorf("enroll: proof: %w: %w", ErrProof, err)
	}
	if !hmac.Equal(mac, proofMAC(k, path, ts, credential, extra)) {
		return fmt.Errorf("enroll: proof does not verify: not made with the credential key's private key: %w", ErrProof)
	}
	return nil
}
