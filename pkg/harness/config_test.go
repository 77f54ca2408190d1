package harness

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/awsapi/awstest"
	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/meshnode"
	"github.com/postern/postern/pkg/testkit"
)

// meshdSetup builds the real meshd and returns it, a directory, an
// authority key made by "meshd authority init" in it, and the example
// catalogue.
func meshdSetup(t *testing.T) (meshd, dir, key string, example []byte) {
	t.Helper()
	meshd = buildCommand(t, "./meshd")
	dir = t.TempDir()
	key = filepath.Join(dir, "authority.key")
	if _, errOut, ok := runCommand(t, meshd, "authority", "init", "--out", key); !ok {
		t.Fatal(errOut)
	}
	example, err := os.ReadFile("../catalog/testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return meshd, dir, key, example
}

// TestMeshdConfigFile runs the real meshd binary from a YAML configuration
// file with one setting from the environment: "meshd config check" shows
// each setting's source and the catalogue's policy tests, a bad file is
// refused with its line, "meshd catalog check" fails on a failing policy
// test, and "meshd run --config" starts and serves its admin address.
func TestMeshdConfigFile(t *testing.T) {
	meshd, dir, key, example := meshdSetup(t)
	catPath := filepath.Join(dir, "catalog.yaml")
	os.WriteFile(catPath, example, 0o644)
	admin := testkit.FreeAddr(t)
	cfg := filepath.Join(dir, "meshd.yaml")
	os.WriteFile(cfg, []byte(`# meshd run settings
id: cfg-node
listen: 127.0.0.1:0
insecure_plain_http: true
wg_listen: 127.0.0.1:0
state_dir: `+filepath.Join(dir, "state")+`
authority_key: `+key+`
catalog: `+catPath+`
drain_timeout: 1s
`), 0o600)
	env := append(os.Environ(), "POSTERN_ADMIN="+admin)

	check := exec.CommandContext(t.Context(), meshd, "config", "check", "--config", cfg)
	check.Env = env
	out, err := check.CombinedOutput()
	if err != nil {
		t.Fatalf("config check: %v\n%s", err, out)
	}
	for _, want := range []string{"SETTING", "authority_key", cfg + ":7", "admin  ", "POSTERN_ADMIN", "log_level", "default", "4 policy tests passed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("id: x\ntls-cert: /x\ndrain_timeout: soon\n"), 0o600)
	if _, errOut, ok := runCommand(t, meshd, "config", "check", "--config", bad); ok ||
		!strings.Contains(errOut, bad+":2: unknown key \"tls-cert\"") || !strings.Contains(errOut, bad+":3: drain_timeout: invalid value") {
		t.Fatalf("config check of a bad file: ok=%v\n%s", ok, errOut)
	}

	failing := filepath.Join(dir, "failing.yaml")
	os.WriteFile(failing, []byte(strings.Replace(string(example), "expect: deny          # no SmartMoney.Admin role", "expect: allow", 1)), 0o644)
	if out, errOut, ok := runCommand(t, meshd, "catalog", "check", "--catalog", failing); ok ||
		!strings.Contains(errOut, "1 of 4 policy tests failed") || !strings.Contains(errOut, "(want allow)") {
		t.Fatalf("catalog check with a failing test: ok=%v\n%s%s", ok, out, errOut)
	}

	run := exec.Command(meshd, "run", "--config", cfg)
	run.Env = env
	var logs SyncBuffer
	run.Stderr = &logs
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Process.Kill(); run.Wait() })
	err = WaitFor(t.Context(), time.Minute, func() bool {
		resp, err := http.Get("http://" + admin + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if err != nil {
		t.Fatalf("meshd run --config never served its admin address\n%s", logs.String())
	}
	// /healthz may answer before the node's first log line is written.
	if err := WaitFor(t.Context(), time.Minute, func() bool { return strings.Contains(logs.String(), `"node":"cfg-node"`) }); err != nil {
		t.Errorf("the node id from the file is not in the log:\n%s", logs.String())
	}
}

// TestMeshdCatalogFromS3: the real meshd binary started with --catalog
// s3://bucket/key (static credentials from the environment, the local S3
// stand-in as AWS_ENDPOINT_URL) serves the object's catalogue, takes a
// changed object live, and refuses a broken upload with a log line naming
// the object while the catalogue in force stays.
func TestMeshdCatalogFromS3(t *testing.T) {
	const uri = "s3://postern-config/mesh/catalog.yaml"
	meshd, dir, key, example := meshdSetup(t)
	s3 := awstest.New(t)
	s3.Put("postern-config", "mesh/catalog.yaml", example)
	admin := testkit.FreeAddr(t)
	run := exec.Command(meshd, "run", "--id", "s3-node", "--listen", "127.0.0.1:0", "--insecure-plain-http", "--wg-listen", "127.0.0.1:0",
		"--state-dir", filepath.Join(dir, "state"), "--authority-key", key, "--catalog", uri, "--admin", admin, "--drain-timeout", "1s")
	run.Env = append(os.Environ(), "AWS_ENDPOINT_URL="+s3.URL, "AWS_REGION=eu-west-1",
		"AWS_ACCESS_KEY_ID="+awstest.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+awstest.SecretAccessKey)
	var logs SyncBuffer
	run.Stderr = &logs
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Process.Kill(); run.Wait() })
	status := func() meshnode.Status {
		var st meshnode.Status
		resp, err := http.Get("http://" + admin + "/status")
		if err != nil {
			return st
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&st)
		return st
	}
	first, err := catalog.Parse("example.yaml", example)
	if err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(t.Context(), time.Minute, func() bool { return status().CatalogHash == first.Hash() }); err != nil {
		t.Fatalf("meshd never served the S3 catalogue (%s):\n%s", first.Hash(), logs.String())
	}

	// A new app in the object: taken live.
	smartmoney, _, _ := strings.Cut(string(example[strings.Index(string(example), "  - id: smartmoney"):]), "\n  - id: ")
	app := strings.NewReplacer("id: smartmoney", "id: payroll", "smartmoney.", "payroll.").Replace(smartmoney) + "\n"
	second := strings.Replace(string(example), "\napps:\n", "\napps:\n"+app, 1)
	want, err := catalog.Parse("second.yaml", []byte(second))
	if err != nil {
		t.Fatalf("the changed catalogue: %v", err)
	}
	s3.Put("postern-config", "mesh/catalog.yaml", []byte(second))
	if err := WaitFor(t.Context(), time.Minute, func() bool { st := status(); return st.CatalogHash == want.Hash() && st.Apps == len(first.Apps())+1 }); err != nil {
		t.Fatalf("meshd did not take the changed object: %+v\n%s", status(), logs.String())
	}

	// A broken upload: refused, logged with the object's name, the
	// catalogue in force kept.
	s3.Put("postern-config", "mesh/catalog.yaml", []byte(second+"  - nonsense\n"))
	if err := WaitFor(t.Context(), time.Minute, func() bool { return strings.Contains(logs.String(), `"msg":"catalog_reload_failed"`) }); err != nil {
		t.Fatalf("the broken upload was not logged:\n%s", logs.String())
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"catalog_reload_failed"`) && (!strings.Contains(line, `"source":"`+uri+`"`) || !strings.Contains(line, `"kept_hash":"`+want.Hash()+`"`)) {
			t.Errorf("the refusal does not name the object and the catalogue kept: %s", line)
		}
	}
	if st := status(); st.CatalogHash != want.Hash() {
		t.Errorf("after the broken upload the node serves %s, want %s still", st.CatalogHash, want.Hash())
	}
	if strings.Contains(logs.String(), awstest.SecretAccessKey) {
		t.Error("the secret access key is in the log")
	}
}
