package certfile_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/postern/postern/pkg/certfile"
	"github.com/postern/postern/pkg/testkit"
)

// pair is a certificate and key in PEM.
type pair struct{ cert, key []byte }

// issue returns a self-signed certificate for name valid until notAfter.
func issue(t *testing.T, name string, notAfter time.Time) pair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sn, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: notAfter.Add(-90 * 24 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pair{pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})}
}

// files is a certificate and key file in a temporary directory.
type files struct{ cert, key string }

func newFiles(t *testing.T, p pair) files {
	dir := t.TempDir()
	f := files{filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")}
	f.write(t, p)
	return f
}

// write replaces both files, each by a rename as an operator's tool
// would.
func (f files) write(t *testing.T, p pair) {
	t.Helper()
	writeFile(t, f.cert, p.cert)
	writeFile(t, f.key, p.key)
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	tmp := name + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

func notAfter(f *certfile.Files) time.Time { return f.Certificate().Leaf.NotAfter }

// TestLoadRefuses: a missing file, a key of another certificate, a file
// that is not PEM, a file too large and an empty path are refused at
// load, naming the file and never echoing key material.
func TestLoadRefuses(t *testing.T) {
	now := time.Now()
	a, b := issue(t, "a.example.com", now.Add(30*24*time.Hour)), issue(t, "b.example.com", now.Add(30*24*time.Hour))
	keyText := strings.Split(string(a.key), "\n")[1][:20]
	dir := t.TempDir()
	for _, tc := range []struct {
		name      string
		cert, key []byte // nil: no such file
		want      string
	}{
		{"no certificate file", nil, a.key, "cert.pem"},
		{"no key file", a.cert, nil, "key.pem"},
		{"key of another certificate", a.cert, b.key, "cert.pem"},
		{"key in the certificate file", a.key, a.key, "cert.pem"},
		{"certificate not PEM", []byte("hello"), a.key, "cert.pem"},
		{"certificate file too large", append(a.cert, make([]byte, 1<<20)...), a.key, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.MkdirAll(sub, 0o700); err != nil {
				t.Fatal(err)
			}
			cfg := certfile.Config{CertFile: filepath.Join(sub, "cert.pem"), KeyFile: filepath.Join(sub, "key.pem")}
			if tc.cert != nil {
				writeFile(t, cfg.CertFile, tc.cert)
			}
			if tc.key != nil {
				writeFile(t, cfg.KeyFile, tc.key)
			}
			f, err := certfile.Load(cfg)
			if err == nil {
				t.Fatalf("loaded %v", f.Certificate().Leaf.Subject)
			}
			if !strings.HasPrefix(err.Error(), "certfile: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to name %s", err, tc.want)
			}
			if strings.Contains(err.Error(), keyText) {
				t.Errorf("error %q echoes the key", err)
			}
		})
	}
	if _, err := certfile.Load(certfile.Config{CertFile: "x"}); err == nil {
		t.Error("no key file named: loaded")
	}
}

// TestWatchRotation runs Watch on the fake clock of a synctest bubble
// through an operator's rotations and botched ones: a new pair is served
// from the first poll after it is written; a certificate written before
// its key (mismatched), a file replaced by garbage, removed files and an
// already expired certificate keep the one in force and are logged once
// each however many polls see them; the same content written again is
// not a reload.
func TestWatchRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now() // the bubble's fake clock
		first := issue(t, "mesh.example.com", now.Add(10*24*time.Hour))
		f0 := newFiles(t, first)
		var logs testkit.SyncBuffer
		logger := slog.New(slog.NewJSONHandler(&logs, nil))
		f, err := certfile.Load(certfile.Config{CertFile: f0.cert, KeyFile: f0.key, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		const poll = time.Second
		go f.Watch(t.Context(), poll)
		// tick lets Watch poll n times and settle.
		tick := func(n int) {
			time.Sleep(time.Duration(n) * poll)
			synctest.Wait()
		}
		count := func(msg string) int { return len(testkit.Records(t, logs.String(), map[string]any{"msg": msg})) }
		want := func(step string, notAfterWant time.Time, reloads, failures int) {
			t.Helper()
			if got := notAfter(f); !got.Equal(notAfterWant) {
				t.Errorf("%s: serving a certificate valid until %v, want %v", step, got, notAfterWant)
			}
			if got := count("tls_certificate_reloaded"); got != reloads {
				t.Errorf("%s: %d reloads logged, want %d", step, got, reloads)
			}
			if got := count("tls_certificate_reload_failed"); got != failures {
				t.Errorf("%s: %d failures logged, want %d", step, got, failures)
			}
		}
		tick(3)
		want("unchanged files", first.Leaf(t), 0, 0)

		second := issue(t, "mesh.example.com", now.Add(90*24*time.Hour))
		f0.write(t, second)
		tick(1)
		want("rotated", second.Leaf(t), 1, 0)

		third := issue(t, "mesh2.example.com", now.Add(120*24*time.Hour))
		writeFile(t, f0.cert, third.cert) // the key comes later
		tick(3)
		want("certificate without its key", second.Leaf(t), 1, 1)
		writeFile(t, f0.key, third.key)
		tick(1)
		want("key written too", third.Leaf(t), 2, 1)
		if name := certfile.Name(f.Certificate().Leaf); name != "mesh2.example.com" {
			t.Errorf("name %q", name)
		}

		writeFile(t, f0.cert, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"))
		tick(3)
		want("garbage", third.Leaf(t), 2, 2)
		if err := os.Remove(f0.cert); err != nil {
			t.Fatal(err)
		}
		tick(2)
		want("removed", third.Leaf(t), 2, 3)

		expired := issue(t, "mesh.example.com", now.Add(-time.Hour))
		f0.write(t, expired)
		tick(2)
		want("expired", third.Leaf(t), 2, 4)

		f0.write(t, third) // back to the pair in force: no reload, failures end
		tick(2)
		want("the pair in force written again", third.Leaf(t), 2, 4)
		f0.write(t, expired) // the same failure again is logged again
		tick(1)
		want("expired again", third.Leaf(t), 2, 5)
	})
}

// Leaf is p's certificate's not-after.
func (p pair) Leaf(t *testing.T) time.Time {
	t.Helper()
	b, _ := pem.Decode(p.cert)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.NotAfter
}

// TestExpiredReplacesExpired: when the certificate in force has expired
// too, an expired replacement is served (the operator may be moving to a
// certificate whose renewal is under way; refusing helps no one).
func TestExpiredReplacesExpired(t *testing.T) {
	now := time.Now()
	old, newer := issue(t, "a.example.com", now.Add(-48*time.Hour)), issue(t, "a.example.com", now.Add(-time.Hour))
	fs := newFiles(t, old)
	f, err := certfile.Load(certfile.Config{CertFile: fs.cert, KeyFile: fs.key})
	if err != nil {
		t.Fatal(err)
	}
	fs.write(t, newer)
	if changed, err := f.Reload(); !changed || err != nil {
		t.Fatalf("got %v, %v", changed, err)
	}
	if !notAfter(f).Equal(newer.Leaf(t)) {
		t.Error("the newer certificate is not served")
	}
}

// TestHandshakeAfterReload: a TLS listener on loopback serving
// GetCertificate hands out the new certificate on the first handshake
// after a reload, without a restart.
func TestHandshakeAfterReload(t *testing.T) {
	now := time.Now()
	a, b := issue(t, "a.example.com", now.Add(24*time.Hour)), issue(t, "b.example.com", now.Add(48*time.Hour))
	fs := newFiles(t, a)
	f, err := certfile.Load(certfile.Config{CertFile: fs.cert, KeyFile: fs.key})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: f.GetCertificate, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	served := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := served(); got != "a.example.com" {
		t.Fatalf("before: served %s", got)
	}
	fs.write(t, b)
	if _, err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := served(); got != "b.example.com" {
		t.Errorf("after the reload: served %s", got)
	}
}
