package session

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type fakeSecrets map[string]string

func (f fakeSecrets) GetSecretString(_ context.Context, id string) (string, error) {
	v, ok := f[id]
	if !ok {
		return "", errors.New("ResourceNotFoundException")
	}
	return v, nil
}

func TestLoadKeyset(t *testing.T) {
	ks := newKeyset(t)
	data, err := ks.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	private := filepath.Join(dir, "keys.json")
	open := filepath.Join(dir, "open.json")
	if err := os.WriteFile(private, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(open, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("POSTERN_TEST_KEYS", string(data))
	sm := fakeSecrets{"arn:aws:secretsmanager:eu-west-1:1:secret:keys": string(data)}
	tests := []struct {
		source string
		sm     SecretsGetter
		ok     bool
	}{
		{"env:POSTERN_TEST_KEYS", nil, true},
		{"env:POSTERN_TEST_NOT_SET", nil, false},
		{"file:" + private, nil, true},
		{"file:" + open, nil, false},
		{"file:" + filepath.Join(dir, "missing"), nil, false},
		{"secretsmanager:arn:aws:secretsmanager:eu-west-1:1:secret:keys", sm, true},
		{"secretsmanager:other", sm, false},
		{"secretsmanager:x", nil, false},
		{"vault:x", nil, false},
		{"keys.json", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.source, func(t *testing.T) {
			got, err := LoadKeyset(t.Context(), tt.source, tt.sm)
			if (err == nil) != tt.ok {
				t.Fatalf("got %v, want ok %v", err, tt.ok)
			}
			if tt.ok && got.ActiveKID() != ks.ActiveKID() {
				t.Errorf("got active %s, want %s", got.ActiveKID(), ks.ActiveKID())
			}
			if err != nil && strings.Contains(err.Error(), string(data[:40])) {
				t.Errorf("error %q contains key material", err)
			}
		})
	}
}
