package awssecrets

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"

	"github.com/postern/postern/pkg/session"
)

// fakeSecretsManager speaks the Secrets Manager JSON 1.1 protocol for
// GetSecretValue.
type fakeSecretsManager struct {
	mu      sync.Mutex
	secrets map[string]string
	targets []string
	auth    []string
}

func (f *fakeSecretsManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.targets = append(f.targets, r.Method+" "+r.URL.Path+" "+r.Header.Get("X-Amz-Target")+" "+r.Header.Get("Content-Type"))
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	body, _ := io.ReadAll(r.Body)
	var in struct{ SecretId string }
	if err := json.Unmarshal(body, &in); err != nil || r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"__type":"InvalidRequestException","message":"bad request"}`))
		return
	}
	v, ok := f.secrets[in.SecretId]
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}`))
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"ARN":           "arn:aws:secretsmanager:eu-west-1:123456789012:secret:" + in.SecretId + "-AbCdEf",
		"Name":          in.SecretId,
		"SecretString":  v,
		"VersionId":     "EXAMPLE1-90ab-cdef-fedc-ba987SECRET1",
		"VersionStages": []string{"AWSCURRENT"},
		"CreatedDate":   1.523477145713e9,
	})
}

func newClient(tb testing.TB, f *fakeSecretsManager) *Client {
	tb.Helper()
	srv := httptest.NewServer(f)
	tb.Cleanup(srv.Close)
	cfg := aws.Config{
		Region:      "eu-west-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
	}
	c, err := New(tb.Context(), Config{AWS: &cfg, BaseEndpoint: srv.URL})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestGetSecretString(t *testing.T) {
	ks, err := session.GenerateKeyset()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := ks.Marshal()
	f := &fakeSecretsManager{secrets: map[string]string{"postern/session-keys": string(data)}}
	c := newClient(t, f)

	got, err := session.LoadKeyset(t.Context(), "secretsmanager:postern/session-keys", c)
	if err != nil {
		t.Fatalf("LoadKeyset: %v", err)
	}
	if got.ActiveKID() != ks.ActiveKID() {
		t.Errorf("got kid %s, want %s", got.ActiveKID(), ks.ActiveKID())
	}
	f.mu.Lock()
	target, auth := f.targets[0], f.auth[0]
	f.mu.Unlock()
	if want := "POST / secretsmanager.GetSecretValue application/x-amz-json-1.1"; target != want {
		t.Errorf("got request %q, want %q", target, want)
	}
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") || !strings.Contains(auth, "/eu-west-1/secretsmanager/aws4_request") {
		t.Errorf("got Authorization %q, want a SigV4 signature for secretsmanager in eu-west-1", auth)
	}

	_, err = c.GetSecretString(t.Context(), "missing")
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ResourceNotFoundException" {
		t.Errorf("got %v, want ResourceNotFoundException", err)
	}
	if err != nil && !strings.Contains(err.Error(), "get secret missing") {
		t.Errorf("got %q, want the secret's id in the error", err)
	}
}
