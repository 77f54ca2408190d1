package infratest

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/postern/postern/pkg/testkit"
)

// terraformFiles returns every .tf, .tfvars and .tflint.hcl file under
// infra/terraform.
func terraformFiles(tb testing.TB) []string {
	tb.Helper()
	var files []string
	root := filepath.Join(repoRoot(tb), "infra", "terraform")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".terraform") {
			return filepath.SkipDir
		}
		if n := d.Name(); !d.IsDir() && (strings.HasSuffix(n, ".tf") || strings.HasSuffix(n, ".tfvars") || n == ".tflint.hcl") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if len(files) < 15 {
		tb.Fatalf("got %d Terraform files, want at least 15 (modules and example)", len(files))
	}
	return files
}

func TestTerraformParsesAndIsFormatted(t *testing.T) {
	parser := hclparse.NewParser()
	for _, path := range terraformFiles(t) {
		rel, _ := filepath.Rel(repoRoot(t), path)
		t.Run(rel, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, diags := parser.ParseHCL(src, rel); diags.HasErrors() {
				t.Fatalf("parse: %v", diags)
			}
			if got := hclwrite.Format(src); !bytes.Equal(got, src) {
				t.Errorf("not canonically formatted (run terraform fmt or tofu fmt)")
			}
		})
	}
}

// moduleDirs are the Terraform root and child modules of infra/terraform.
var moduleDirs = []string{
	"modules/auth-functions",
	"modules/mesh-region",
	"modules/entra-app",
	"examples/two-region",
}

func TestModulesDocumentVariablesAndOutputs(t *testing.T) {
	for _, dir := range moduleDirs {
		t.Run(dir, func(t *testing.T) {
			body := moduleBody(t, filepath.Join(repoRoot(t), "infra", "terraform", dir))
			counts := map[string]int{}
			for _, b := range body.Blocks {
				switch b.Type {
				case "variable", "output":
					counts[b.Type]++
					if !hasDescription(b) {
						t.Errorf("%s %q has no description", b.Type, b.Labels[0])
					}
				case "terraform":
					counts["terraform"]++
					checkTerraformBlock(t, b)
				}
			}
			for _, kind := range []string{"variable", "output", "terraform"} {
				if counts[kind] == 0 {
					t.Errorf("got no %s block, want at least one", kind)
				}
			}
		})
	}
}

// moduleBody returns the blocks of every .tf file of dir.
func moduleBody(tb testing.TB, dir string) *hclsyntax.Body {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil || len(paths) == 0 {
		tb.Fatalf("no .tf files in %s (%v)", dir, err)
	}
	all := &hclsyntax.Body{}
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		f, diags := hclsyntax.ParseConfig(src, p, hcl.InitialPos)
		if diags.HasErrors() {
			tb.Fatalf("parse %s: %v", p, diags)
		}
		all.Blocks = append(all.Blocks, f.Body.(*hclsyntax.Body).Blocks...)
	}
	return all
}

// hasDescription reports whether b has a non-empty literal description.
func hasDescription(b *hclsyntax.Block) bool {
	a, ok := b.Body.Attributes["description"]
	if !ok {
		return false
	}
	v, diags := a.Expr.Value(nil)
	return !diags.HasErrors() && v.Type().FriendlyName() == "string" && strings.TrimSpace(v.AsString()) != ""
}

// checkTerraformBlock requires required_version >= 1.6 and a source and
// pinned version for every required provider.
func checkTerraformBlock(tb testing.TB, b *hclsyntax.Block) {
	tb.Helper()
	a, ok := b.Body.Attributes["required_version"]
	if !ok {
		tb.Errorf("terraform block has no required_version")
	} else if v, _ := a.Expr.Value(nil); !strings.Contains(v.AsString(), "1.6") {
		tb.Errorf("required_version %q, want >= 1.6.0 (OpenTofu 1.6 compatible)", v.AsString())
	}
	providers := 0
	for _, rp := range b.Body.Blocks {
		if rp.Type != "required_providers" {
			continue
		}
		for name, attr := range rp.Body.Attributes {
			providers++
			v, diags := attr.Expr.Value(nil)
			if diags.HasErrors() || !v.Type().IsObjectType() {
				tb.Errorf("provider %s: want { source, version }", name)
				continue
			}
			for _, key := range []string{"source", "version"} {
				if !v.Type().HasAttribute(key) || v.GetAttr(key).AsString() == "" {
					tb.Errorf("provider %s has no %s", name, key)
				}
			}
		}
	}
	if providers == 0 {
		tb.Errorf("terraform block lists no required_providers")
	}
}

func TestTFLint(t *testing.T) {
	tflint := testkit.Tool(t, "tflint")
	dir := filepath.Join(repoRoot(t), "infra", "terraform")
	out, err := runErr(t, dir, []string{"TFLINT_LOG="}, tflint, "--recursive", "--config", filepath.Join(dir, ".tflint.hcl"), "--format", "compact", "--no-color")
	if err != nil {
		t.Fatalf("tflint: %v\n%s", err, out)
	}
}

// TestTFLintCatchesUndocumented proves the configured rules run: an
// undocumented, untyped variable must fail.
func TestTFLintCatchesUndocumented(t *testing.T) {
	tflint := testkit.Tool(t, "tflint")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte("variable \"x\" {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(repoRoot(t), "infra", "terraform", ".tflint.hcl")
	out, err := runErr(t, dir, nil, tflint, "--config", cfg, "--format", "compact", "--no-color")
	if err == nil {
		t.Fatalf("got success, want tflint to fail on an undocumented variable:\n%s", out)
	}
	if !strings.Contains(string(out), "terraform_documented_variables") {
		t.Errorf("got %s, want a terraform_documented_variables finding", out)
	}
}
