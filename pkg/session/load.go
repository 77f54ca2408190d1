package session

import (
	"context"
	"fmt"
	"os"
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
	kind, ref, ok := strings.Cut(source, ":")
	if !ok || ref == "" {
		return nil, fmt.Errorf("load keyset: source %q: want env:NAME, file:/path or secretsmanager:<id>", source)
	}
	var data []byte
	switch kind {
	case "env":
		v, ok := os.LookupEnv(ref)
		if !ok || v == "" {
			return nil, fmt.Errorf("load keyset: environment variable %s is not set", ref)
		}
		data = []byte(v)
	case "file":
		fi, err := os.Stat(ref)
		if err != nil {
			return nil, fmt.Errorf("load keyset: %w", err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			return nil, fmt.Errorf("load keyset: %s has mode %04o: must not be accessible by group or others (chmod 600)", ref, perm)
		}
		if data, err = os.ReadFile(ref); err != nil {
			return nil, fmt.Errorf("load keyset: %w", err)
		}
	case "secretsmanager":
		if sm == nil {
			return nil, fmt.Errorf("load keyset: source secretsmanager: no Secrets Manager client configured")
		}
		v, err := sm.GetSecretString(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("load keyset: secret %s: %w", ref, err)
		}
		data = []byte(v)
	default:
		return nil, fmt.Errorf("load keyset: source kind %q: want env, file or secretsmanager", kind)
	}
	ks, err := ParseKeyset(data)
	if err != nil {
		return nil, fmt.Errorf("load keyset from %s: %w", kind, err)
	}
	return ks, nil
}
