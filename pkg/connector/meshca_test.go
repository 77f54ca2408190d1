package connector

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTLSHint fetches from real servers with the failures a connector
// meets at enrolment and checks that each error gets the advice naming
// what to fix; other errors get none.
func TestTLSHint(t *testing.T) {
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshakes are the point
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	plainSrv := httptest.NewServer(http.NotFoundHandler())
	defer plainSrv.Close()
	trusting := func(name string) *http.Client {
		pool := x509.NewCertPool()
		pool.AddCert(tlsSrv.Certificate())
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: name}}}
	}
	expired := func() *http.Client {
		c := trusting("")
		c.Transport.(*http.Transport).TLSClientConfig.Time = func() time.Time { return time.Now().Add(100 * 365 * 24 * time.Hour) }
		return c
	}
	tests := []struct {
		name   string
		client *http.Client
		url    string
		want   string
	}{
		{"unknown CA", &http.Client{}, tlsSrv.URL, "pass --mesh-ca FILE"},
		{"wrong host name", trusting("mesh.postern.invalid"), tlsSrv.URL, "give --mesh the name the certificate was issued for"},
		{"expired", expired(), tlsSrv.URL, "not valid now"},
		{"plain HTTP port", &http.Client{}, strings.Replace(plainSrv.URL, "http:", "https:", 1), "does not speak TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", tt.url, nil)
			_, err := tt.client.Do(req)
			if err == nil {
				t.Fatal("request succeeded; the case is broken")
			}
			if got := TLSHint(err); !strings.Contains(got, tt.want) {
				t.Errorf("TLSHint(%v): got %q, want %q", err, got, tt.want)
			}
			if got := withTLSHint(err).Error(); !strings.Contains(got, err.Error()) || !strings.Contains(got, tt.want) {
				t.Errorf("withTLSHint: got %q, want the error and the hint", got)
			}
		})
	}
	if got := TLSHint(context.DeadlineExceeded); got != "" {
		t.Errorf("a timeout: got hint %q, want none", got)
	}
	if got := TLSHint(nil); got != "" {
		t.Errorf("nil: got hint %q, want none", got)
	}
}

func TestMeshCAKept(t *testing.T) {
	dir := t.TempDir()
	if got, err := LoadMeshCA(dir); err != nil || got != nil {
		t.Fatalf("none kept: got %q, %v, want nil, nil", got, err)
	}
	pem := []byte("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
	if err := SaveMeshCA(dir, pem); err != nil {
		t.Fatal(err)
	}
	got, err := LoadMeshCA(dir)
	if err != nil || !bytes.Equal(got, pem) {
		t.Fatalf("got %q, %v", got, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, MeshCAFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}
