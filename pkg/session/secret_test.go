package session

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/testkit"
)

type leakySecrets struct{}

func (leakySecrets) GetSecretString(context.Context, string) (string, error) {
	return "", errors.New("AccessDeniedException")
}

// TestReadSecretNeverEchoes feeds ReadSecret what an operator pastes by
// mistake: the secret itself, with every separator a parser might split
// on, where its source belongs. No error may hold four characters of it.
func TestReadSecretNeverEchoes(t *testing.T) {
	const secret = "Zq8vK3xW9pLm2TgR"
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose")
	if err := os.WriteFile(loose, []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	blank := filepath.Join(dir, "blank")
	if err := os.WriteFile(blank, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"EMPTY": "", "SPACES": "  \t\n"}
	getenv := func(k string) string { return env[k] }
	var sources []string
	for _, sep := range []string{":", "=", "/", " ", ",", ";", "\n", "\t", "@", "|", "::", ": "} {
		sources = append(sources,
			secret,                    // the secret alone
			secret[:5]+sep+secret[5:], // split by the separator
			"client"+sep+secret,       // a label and the secret
			secret+sep,                // a trailing separator
			sep+secret,                // a leading one
			"env"+sep+secret,          // a near-miss kind
			"ENV:"+secret,             // the kind in capitals
			"env:"+secret+sep+"x",     // env: followed by a value, not a name
			"vault:"+secret,           // an unknown kind
		)
	}
	sources = append(sources,
		`{"active":"`+secret+`","keys":[]}`, // a key set pasted as JSON
		"env:"+secret+"=x",
		"env: "+secret,
		"env:",
		"",
		"secretsmanager:"+"id",
	)
	for _, src := range sources {
		_, err := ReadSecret(t.Context(), getenv, src, nil)
		if err == nil {
			t.Errorf("ReadSecret(%q) succeeded", src)
			continue
		}
		if p := testkit.SecretPiece(err.Error(), secret, 4); p != "" {
			t.Errorf("ReadSecret(%q) error %q shows %q of the secret", src, err, p)
		}
	}
	// Well-formed sources whose secret is unusable say why without it.
	for _, tc := range []struct {
		src  string
		sm   SecretsGetter
		want string
	}{
		{"env:EMPTY", nil, "not set or empty"},
		{"env:SPACES", nil, "is empty"},
		{"file:" + loose, nil, "chmod 600"},
		{"file:" + blank, nil, "empty"},
		{"file:" + filepath.Join(dir, "missing"), nil, "no such file"},
		{"secretsmanager:prod/client", nil, "no Secrets Manager client"},
		{"secretsmanager:prod/client", leakySecrets{}, "AccessDeniedException"},
	} {
		_, err := ReadSecret(t.Context(), getenv, tc.src, tc.sm)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadSecret(%q) = %v, want an error saying %q", tc.src, err, tc.want)
			continue
		}
		if p := testkit.SecretPiece(err.Error(), secret, 4); p != "" {
			t.Errorf("ReadSecret(%q) error %q shows %q of the secret", tc.src, err, p)
		}
	}
	env["GOOD"] = "  " + secret + "\n"
	if got, err := ReadSecret(t.Context(), getenv, "env:GOOD", nil); err != nil || string(got) != secret {
		t.Errorf("ReadSecret(env:GOOD) = %q, %v; want the trimmed secret", got, err)
	}
}
