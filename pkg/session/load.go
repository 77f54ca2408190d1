package session

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// SecretsGetter reads a secret's string value, such as AWS Secrets
// Manager's GetSecretValue (see pkg/awssecrets). It is called once per
// [LoadKeyset]; implementations must be safe for concurrent use and must
// not include the secret's value in errors.
type SecretsGetter interface {
	GetSecretString(ctx context.Context, id string) (string, error)
}

// LoadKeyset loads a key set in the JSON form of [Keyset.Marshal] from
// source:
//
//   - "env:NAME": the environment variable NAME;
//   - "file:/path": a file that must not be readable or writable by group
//     or others (mode 0600 or stricter);
//   - "secretsmanager:<arn or name>": a secret read through sm.
func LoadKeyset(ctx context.Context, source string, sm SecretsGetter) (*Keyset, error) {
	data, err := ReadSecret(ctx, os.Getenv, source, sm)
	if err != nil {
		return nil, fmt.Errorf("load keyset: %w", err)
	}
	ks, err := ParseKeyset(data)
	if err != nil {
		kind, _, _ := strings.Cut(source, ":") // one of the three kinds: ReadSecret checked
		return nil, fmt.Errorf("load keyset from %s: %w", kind, err)
	}
	return ks, nil
}

// ErrSecretSource is the class of the errors of [ReadSecret] about the
// source itself (its form, a missing variable or file, loose permissions).
var ErrSecretSource = errors.New("bad secret source")

// envName matches what "env:" may name: a conventional variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ReadSecret reads the secret that source names: "env:NAME" through
// getenv, "file:/path" (mode 0600 or stricter) or "secretsmanager:<id>"
// through sm (nil refuses that kind). Surrounding white space is trimmed;
// an empty secret is an error.
//
// Its errors never hold any part of a value, nor any part of a source that
// is not one of those forms: an operator who pastes the secret itself
// where its source belongs (a client secret with a ':' in it, a key set in
// JSON) must not find it in the logs. They name the file's path (which
// the operator chose as a place, not as a secret), never the variable
// that "env:" names, which may be the secret pasted after "env:".
func ReadSecret(ctx context.Context, getenv func(string) string, source string, sm SecretsGetter) ([]byte, error) {
	kind, ref, ok := strings.Cut(source, ":")
	if !ok || ref == "" || (kind != "env" && kind != "file" && kind != "secretsmanager") {
		return nil, fmt.Errorf("%w: want env:NAME, file:/path or secretsmanager:<id> (the source of the secret, never the secret itself; the value given is not shown)", ErrSecretSource)
	}
	var v string
	switch kind {
	case "env":
		if !envName.MatchString(ref) {
			return nil, fmt.Errorf("%w: env: must be followed by an environment variable's name (the value given is not shown)", ErrSecretSource)
		}
		if v = getenv(ref); v == "" {
			// The name is not shown: "env:" followed by the secret itself
			// is a mistake made often enough.
			return nil, fmt.Errorf("%w: the environment variable that env: names is not set or empty (its name is not shown in case it is the secret itself)", ErrSecretSource)
		}
	case "file":
		fi, err := os.Stat(ref)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSecretSource, err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			return nil, fmt.Errorf("%w: %s has mode %04o: must not be accessible by group or others (chmod 600)", ErrSecretSource, ref, perm)
		}
		b, err := os.ReadFile(ref)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSecretSource, err)
		}
		v = string(b)
	case "secretsmanager":
		if sm == nil {
			return nil, fmt.Errorf("%w: source secretsmanager: no Secrets Manager client configured", ErrSecretSource)
		}
		s, err := sm.GetSecretString(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", ref, err)
		}
		v = s
	}
	if v = strings.TrimSpace(v); v == "" {
		return nil, fmt.Errorf("%w: the secret from %s is empty", ErrSecretSource, kind)
	}
	return []byte(v), nil
}
