package infratest

import (
	"archive/zip"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/testkit"
)

// buildZip runs the lambdazip tool (the same command as task build:lambda)
// and returns the zip bytes.
func buildZip(tb testing.TB, lambdazip, out, arch string) []byte {
	tb.Helper()
	run(tb, "", nil, lambdazip, "-o", out, "-arch", arch)
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// zipEntries returns the names in the zip z.
func zipEntries(tb testing.TB, z []byte) []string {
	tb.Helper()
	r, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		tb.Fatalf("open zip: %v", err)
	}
	var names []string
	for _, f := range r.File {
		names = append(names, f.Name)
	}
	return names
}

// zipFile returns the content and mode of name in the zip z.
func zipFile(tb testing.TB, z []byte, name string) ([]byte, os.FileMode) {
	tb.Helper()
	r, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		tb.Fatalf("open zip: %v", err)
	}
	for _, f := range r.File {
		if f.Name != name {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			tb.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			tb.Fatal(err)
		}
		return b, f.Mode()
	}
	tb.Fatalf("zip has no %s", name)
	return nil, 0
}

func TestLambdaZipReproducibleArm64(t *testing.T) {
	dir := t.TempDir()
	lambdazip := buildTool(t, dir, "lambdazip")
	a := buildZip(t, lambdazip, filepath.Join(dir, "a", "auth.zip"), "arm64")
	b := buildZip(t, lambdazip, filepath.Join(dir, "b", "auth.zip"), "arm64")
	if !bytes.Equal(a, b) {
		t.Errorf("two builds differ: %d and %d bytes", len(a), len(b))
	}
	bin, mode := zipFile(t, a, "bootstrap")
	if mode != 0o755 {
		t.Errorf("bootstrap mode: got %v, want %v", mode, os.FileMode(0o755))
	}
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("bootstrap is not ELF: %v", err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_AARCH64 || f.Type != elf.ET_EXEC {
		t.Errorf("bootstrap: got %v %v %v, want ELFCLASS64 EM_AARCH64 ET_EXEC", f.Class, f.Machine, f.Type)
	}
	if _, err := f.DynamicSymbols(); err == nil {
		t.Errorf("bootstrap is dynamically linked, want static (CGO_ENABLED=0)")
	}
	if n := zipEntries(t, a); len(n) != 1 {
		t.Errorf("zip holds %v, want only bootstrap (the function holds no catalogue)", n)
	}
}

// apiGatewayV2Event is an HTTP API (payload 2.0) GET request event.
func apiGatewayV2Event(path string) []byte {
	return []byte(fmt.Sprintf(`{
  "version": "2.0", "routeKey": "$default", "rawPath": %q, "rawQueryString": "",
  "headers": {"host": "auth.example.com", "user-agent": "infratest", "x-forwarded-proto": "https", "x-forwarded-for": "192.0.2.1"},
  "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "auth.example.com", "domainPrefix": "auth",
    "http": {"method": "GET", "path": %q, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "infratest"},
    "requestId": "req-1", "routeKey": "$default", "stage": "$default", "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 1767225600000},
  "isBase64Encoded": false
}`, path, path))
}

func TestLambdaUnderRuntimeInterfaceEmulator(t *testing.T) {
	rie := testkit.Tool(t, "aws-lambda-rie")
	dir := t.TempDir()
	lambdazip := buildTool(t, dir, "lambdazip")
	z := buildZip(t, lambdazip, filepath.Join(dir, "auth.zip"), runtime.GOARCH)
	task := filepath.Join(dir, "task")
	if err := os.MkdirAll(task, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, _ := zipFile(t, z, "bootstrap")
	if err := os.WriteFile(filepath.Join(task, "bootstrap"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ks, err := session.GenerateKeyset()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ks.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), keys, 0o600); err != nil {
		t.Fatal(err)
	}
	port, apiPort := testkit.FreePort(t), testkit.FreePort(t)
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", fmt.Sprintf("127.0.0.1:%d", port),
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", apiPort), filepath.Join(task, "bootstrap"))
	cmd.Dir = task
	cmd.Env = append(os.Environ(),
		"POSTERN_AUTH_URL=https://auth.example.com",
		"POSTERN_MESH_AUTHORITY_PUBLIC_KEY=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
		"POSTERN_SESSION_KEYS=file:"+filepath.Join(dir, "keys.json"),
		"POSTERN_STATE_KEY=env:STATE_KEY_B64",
		"STATE_KEY_B64=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"POSTERN_ENTRA_TENANT_ID=3f6c1a2e-8b4d-4c7e-9a15-0d2b7e6f4c81",
		"POSTERN_OIDC_CLIENT_ID=0e6b0000-0000-0000-0000-000000000001",
		"AWS_REGION=eu-west-1", "AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=x")
	var logs testkit.SyncBuffer // the emulator writes while the test may read
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	url := fmt.Sprintf("http://127.0.0.1:%d/2015-03-31/functions/function/invocations", port)
	var resp struct {
		StatusCode int               `json:"statusCode"`
		Headers    map[string]string `json:"headers"`
		Body       string            `json:"body"`
	}
	// Poll until the emulator answers, bounded by the test's deadline
	// only: starting it and the function is slow on a loaded machine.
	ctx, cancel := testContext(t)
	defer cancel()
	for {
		body, err := invoke(ctx, url, apiGatewayV2Event("/healthz"))
		if err == nil {
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatalf("response %s: %v", body, err)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no answer from the emulator before the test's deadline: %v\nlogs:\n%s", err, logs.String())
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: got status %d, want 200 (body %q)\nlogs:\n%s", resp.StatusCode, resp.Body, logs.String())
	}
	if strings.TrimSpace(resp.Body) == "" {
		t.Errorf("GET /healthz: got an empty body")
	}
	// A second invocation hits the warm function.
	body, err := invoke(ctx, url, apiGatewayV2Event("/.well-known/jwks.json"))
	if err != nil {
		t.Fatalf("second invocation: %v", err)
	}
	if !strings.Contains(string(body), ks.ActiveKID()) {
		t.Errorf("GET /.well-known/jwks.json: got %s, want the active kid %s", body, ks.ActiveKID())
	}
}

// invoke posts event to the emulator and returns the function's answer.
func invoke(ctx context.Context, url string, event []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(event))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("emulator status %d: %s", resp.StatusCode, b)
	}
	return b, nil
}
