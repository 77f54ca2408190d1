package infratest

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/postern/postern/pkg/gossip"
)

// meshRegionDir is the mesh-region module, relative to the repository root.
var meshRegionDir = filepath.Join("infra", "terraform", "modules", "mesh-region")

// hclFunctions are the Terraform functions the mesh-region checks use,
// with nonsensitive as the identity (these tests carry no marks).
func hclFunctions() map[string]function.Function {
	return map[string]function.Function{
		"can":       tryfunc.CanFunc,
		"try":       tryfunc.TryFunc,
		"concat":    stdlib.ConcatFunc,
		"length":    stdlib.LengthFunc,
		"regex":     stdlib.RegexFunc,
		"split":     stdlib.SplitFunc,
		"substr":    stdlib.SubstrFunc,
		"trimspace": stdlib.TrimSpaceFunc,
		"nonsensitive": function.New(&function.Spec{
			Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType}},
			Type:   function.StaticReturnType(cty.DynamicPseudoType),
			Impl:   func(args []cty.Value, _ cty.Type) (cty.Value, error) { return args[0], nil },
		}),
	}
}

// parseModuleFile parses one .tf file of the mesh-region module.
func parseModuleFile(tb testing.TB, name string) *hclsyntax.Body {
	tb.Helper()
	p := filepath.Join(repoRoot(tb), meshRegionDir, name)
	src, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, p, hcl.InitialPos)
	if diags.HasErrors() {
		tb.Fatalf("parse %s: %v", p, diags)
	}
	return f.Body.(*hclsyntax.Body)
}

// findBlock returns the first block of body with type typ and labels.
func findBlock(tb testing.TB, body *hclsyntax.Body, typ string, labels ...string) *hclsyntax.Block {
	tb.Helper()
	for _, b := range body.Blocks {
		if b.Type == typ && slices.Equal(b.Labels, labels) {
			return b
		}
	}
	tb.Fatalf("no %s %v block", typ, labels)
	return nil
}

// gossipKeyringAccepted evaluates the mesh-region module's gossip locals
// and the keyring precondition of its secret versions for keyring; it
// returns whether gossip is on and whether the plan would go ahead.
func gossipKeyringAccepted(tb testing.TB, keyring string) (enabled, ok bool) {
	tb.Helper()
	body := parseModuleFile(tb, "main.tf")
	locals := findBlock(tb, body, "locals").Body.Attributes
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{"gossip_keyring": cty.StringVal(keyring)})},
		Functions: hclFunctions(),
	}
	vals := map[string]cty.Value{}
	// The gossip locals refer to each other: evaluate in dependency order.
	names := []string{"gossip_enabled", "gossip_key_pattern", "gossip_keyring_bad", "gossip_keyring_keys"}
	for _, name := range names {
		a, found := locals[name]
		if !found {
			tb.Fatalf("got no local %s in mesh-region", name)
		}
		ctx.Variables["local"] = cty.ObjectVal(vals)
		v, diags := a.Expr.Value(ctx)
		if diags.HasErrors() {
			tb.Fatalf("local.%s: %v", name, diags)
		}
		vals[name] = v
	}
	lc := findBlock(tb, findBlock(tb, body, "resource", "aws_secretsmanager_secret_version", "node").Body, "lifecycle")
	pre := findBlock(tb, lc.Body, "precondition").Body.Attributes
	if msg, diags := pre["error_message"].Expr.Value(nil); diags.HasErrors() || !strings.Contains(msg.AsString(), "not shown") {
		tb.Errorf("keyring precondition message: got %v %v, want a literal that says the value is not shown", msg, diags)
	}
	ctx.Variables["local"] = cty.ObjectVal(vals)
	ctx.Variables["each"] = cty.ObjectVal(map[string]cty.Value{"key": cty.StringVal("gossip-keyring")})
	v, diags := pre["condition"].Expr.Value(ctx)
	if diags.HasErrors() {
		tb.Fatalf("keyring precondition: %v", diags)
	}
	return vals["gossip_enabled"].True(), v.True()
}

func TestMeshRegionGossipKeyringCheck(t *testing.T) {
	key := func(n int) string { return base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", n))) }
	generated := filepath.Join(t.TempDir(), "gossip.keyring")
	if err := gossip.WriteNewKeyring(generated); err != nil {
		t.Fatal(err)
	}
	keygenOut, err := os.ReadFile(generated)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, keyring string
	}{
		{"meshd gossip keygen output", string(keygenOut)},
		{"32-byte key", key(32) + "\n"},
		{"16- and 24-byte keys, no newline", key(16) + "\n" + key(24)},
		{"rotation with CRLF and blank lines", "\r\n" + key(32) + "\r\n\r\n  " + key(32) + "  \r\n"},
		{"20-byte key", key(20) + "\n"},
		{"64-byte key", key(64) + "\n"},
		{"not base64", key(32) + "\nnot*base64*at*all*not*base64*at*all*abcdefg\n"},
		{"unpadded", strings.TrimRight(key(32), "=") + "\n"},
		{"comments only", "# a keyring\n# with no key\n"},
		{"key after text on a line", "key " + key(32) + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, loadErr := gossip.ParseKeyring("test", []byte(tt.keyring))
			enabled, ok := gossipKeyringAccepted(t, tt.keyring)
			if !enabled {
				t.Fatalf("got gossip off for a non-empty keyring, want on")
			}
			if want := loadErr == nil; ok != want {
				t.Errorf("got plan accepted %v, want %v (meshd: %v)", ok, want, loadErr)
			}
		})
	}
	t.Run("empty turns gossip off", func(t *testing.T) {
		if enabled, _ := gossipKeyringAccepted(t, ""); enabled {
			t.Errorf("got gossip on for an empty keyring, want off")
		}
	})
}

func TestMeshRegionValidations(t *testing.T) {
	body := parseModuleFile(t, "variables.tf")
	tests := []struct {
		variable string
		value    cty.Value
		want     bool
	}{
		{"gossip_seeds", cty.ListValEmpty(cty.String), true},
		{"gossip_seeds", cty.ListVal([]cty.Value{cty.StringVal("203.0.113.10:7946"), cty.StringVal("gossip-us-east-1.example.com:7946")}), true},
		{"gossip_seeds", cty.ListVal([]cty.Value{cty.StringVal("[2001:db8::1]:7946")}), true},
		{"gossip_seeds", cty.ListVal([]cty.Value{cty.StringVal("203.0.113.10")}), false},
		{"gossip_seeds", cty.ListVal([]cty.Value{cty.StringVal("a:1,b:2")}), false},
		{"gossip_seeds", cty.ListVal([]cty.Value{cty.StringVal("203.0.113.10:7946"), cty.StringVal("")}), false},
		{"public_url", cty.StringVal(""), true},
		{"public_url", cty.StringVal("https://mesh-eu-west-1.example.com"), true},
		{"public_url", cty.StringVal("https://mesh.example.com:8443/"), true},
		{"public_url", cty.StringVal("http://mesh.example.com"), false},
		{"public_url", cty.StringVal("https://mesh.example.com/attach"), false},
		{"public_url", cty.StringVal("mesh.example.com"), false},
	}
	for _, tt := range tests {
		t.Run(tt.variable+"="+tt.value.GoString(), func(t *testing.T) {
			v := findBlock(t, body, "variable", tt.variable)
			ctx := &hcl.EvalContext{
				Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{tt.variable: tt.value})},
				Functions: hclFunctions(),
			}
			got := true
			for _, b := range v.Body.Blocks {
				if b.Type != "validation" {
					continue
				}
				r, diags := b.Body.Attributes["condition"].Expr.Value(ctx)
				if diags.HasErrors() {
					t.Fatalf("condition: %v", diags)
				}
				got = got && r.True()
			}
			if got != tt.want {
				t.Errorf("got valid %v, want %v", got, tt.want)
			}
		})
	}
}

// renderUserData renders the node bootstrap template with the variables
// main.tf passes it, failing if the template uses any other.
func renderUserData(tb testing.TB, gossipOn bool, seeds, publicURL, discover string) string {
	tb.Helper()
	p := filepath.Join(repoRoot(tb), meshRegionDir, "user_data.sh.tftpl")
	src, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl, diags := hclsyntax.ParseTemplate(src, p, hcl.InitialPos)
	if diags.HasErrors() {
		tb.Fatalf("parse template: %v", diags)
	}
	// The keys of the templatefile() object in main.tf.
	passed := map[string]bool{}
	locals := findBlock(tb, parseModuleFile(tb, "main.tf"), "locals").Body.Attributes
	call, ok := locals["user_data"].Expr.(*hclsyntax.FunctionCallExpr)
	if !ok || call.Name != "templatefile" || len(call.Args) != 2 {
		tb.Fatalf("local.user_data: want templatefile(path, {...})")
	}
	for _, item := range call.Args[1].(*hclsyntax.ObjectConsExpr).Items {
		passed[hcl.ExprAsKeyword(item.KeyExpr)] = true
	}
	vars := map[string]cty.Value{
		"package_url": cty.StringVal("https://dl.example.com/m.rpm"), "package_sha256": cty.StringVal(strings.Repeat("0", 64)),
		"aws_region": cty.StringVal("eu-west-1"), "authority_key_arn": cty.StringVal("arn:a"), "tls_cert_arn": cty.StringVal("arn:c"),
		"tls_key_arn": cty.StringVal("arn:k"), "tls_files": cty.BoolVal(true), "acme_directory_url": cty.StringVal(""), "acme_email": cty.StringVal(""),
		"catalog_uri": cty.StringVal("s3://postern-config-1/catalog.yaml"), "catalog_region": cty.StringVal("eu-west-1"),
		"auth_url": cty.StringVal("https://auth.example.com"), "discover_spec": cty.StringVal(discover), "region_label": cty.StringVal("eu-west-1"),
		"wireguard_port": cty.NumberIntVal(51820), "extra_args": cty.StringVal("--log-level debug"),
		"gossip_keyring_arn": cty.StringVal("arn:g"), "gossip_enabled": cty.BoolVal(gossipOn), "gossip_port": cty.NumberIntVal(7946),
		"gossip_seeds": cty.StringVal(seeds), "public_url": cty.StringVal(publicURL),
	}
	for _, tr := range tmpl.Variables() {
		name := tr.RootName()
		if !passed[name] {
			tb.Errorf("template uses %s, which main.tf does not pass", name)
		}
		if _, ok := vars[name]; !ok {
			tb.Fatalf("template uses %s, unknown to this test", name)
		}
	}
	out, diags := tmpl.Value(&hcl.EvalContext{Variables: vars})
	if diags.HasErrors() {
		tb.Fatalf("render: %v", diags)
	}
	return out.AsString()
}

func TestMeshRegionUserData(t *testing.T) {
	const base = "MESHD_ARGS=--id $instance_id --region eu-west-1 --listen :443 --wg-listen 0.0.0.0:51820 --wg-advertise $public_ip:51820" +
		" --catalog s3://postern-config-1/catalog.yaml --aws-region eu-west-1 --auth-url https://auth.example.com"
	const discover = "provider=aws regions=eu-west-1,us-east-1 tag_key=postern-cluster tag_value=postern addr_type=public_v4 port=7946"
	tests := []struct {
		name                       string
		gossip                     bool
		seeds, publicURL, discover string
		wantArgs                   string
	}{
		{"lone node", false, "", "", "", base + " --log-level debug\n"},
		{"lone node ignores seeds and discovery", false, "a:1", "https://mesh-eu-west-1.example.com", discover,
			base + " --public-url https://mesh-eu-west-1.example.com --log-level debug\n"},
		{"cluster", true, "203.0.113.10:7946,198.51.100.20:7946", "https://mesh-eu-west-1.example.com", "",
			base + " --public-url https://mesh-eu-west-1.example.com --gossip-listen 0.0.0.0:7946 --gossip-advertise $public_ip:7946" +
				" --gossip-keyring /etc/postern/gossip.keyring --join 203.0.113.10:7946,198.51.100.20:7946 --log-level debug\n"},
		{"cluster found by tags", true, "", "https://m.example.com", discover,
			base + " --public-url https://m.example.com --gossip-listen 0.0.0.0:7946 --gossip-advertise $public_ip:7946" +
				" --gossip-keyring /etc/postern/gossip.keyring --join-discover '" + discover + "' --log-level debug\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script := renderUserData(t, tt.gossip, tt.seeds, tt.publicURL, tt.discover)
			var args string
			for _, l := range strings.SplitAfter(script, "\n") {
				if strings.HasPrefix(l, "MESHD_ARGS=") {
					args = l
				}
			}
			if args != tt.wantArgs {
				t.Errorf("got %q, want %q", args, tt.wantArgs)
			}
			fetch := []string{"secret 'arn:g' >/etc/postern/gossip.keyring\n", "chown postern-meshd:postern-meshd /etc/postern/gossip.keyring\n",
				"chmod 0600 /etc/postern/gossip.keyring\n"}
			for _, l := range fetch {
				if got := strings.Contains(script, "\n"+l); got != tt.gossip {
					t.Errorf("got line %q present %v, want %v", strings.TrimSpace(l), got, tt.gossip)
				}
			}
			// Every node mints its node credential: it signs sign-in requests too.
			for _, l := range []string{"/usr/bin/meshd node credential --authority-key /etc/postern/authority.key --id \"$instance_id\" --region 'eu-west-1' --state-dir /var/lib/postern-meshd\n",
				"chown -R postern-meshd:postern-meshd /var/lib/postern-meshd\n"} {
				if !strings.Contains(script, "\n"+l) {
					t.Errorf("no line %q", strings.TrimSpace(l))
				}
			}
			if strings.Contains(script, "catalog.yaml >") || strings.Contains(script, "base64 -d") {
				t.Error("the bootstrap writes a catalogue: a catalogue change would roll the nodes")
			}
			path := filepath.Join(t.TempDir(), "user_data.sh")
			if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("bash", "-n", path).CombinedOutput(); err != nil {
				t.Errorf("bash -n: %v\n%s", err, out)
			}
		})
	}
}

// TestMeshUnitNeedsNoKeyring checks that the unit starts without a gossip
// keyring: no credential for it (a missing LoadCredential= source fails
// the unit) and nothing gossip-specific on ExecStart.
func TestMeshUnitNeedsNoKeyring(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "infra", "packaging", "systemd", "postern-meshd.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "LoadCredential=") && strings.Contains(l, "gossip") {
			t.Errorf("got %q, want no gossip credential", l)
		}
		if strings.HasPrefix(l, "ExecStart=") && strings.Contains(l, "gossip") {
			t.Errorf("got %q, want the gossip flags in MESHD_ARGS only", l)
		}
		if strings.HasPrefix(l, "ProtectSystem=") && l != "ProtectSystem=strict" {
			t.Errorf("got %q, want ProtectSystem=strict (read-only /etc/postern)", l)
		}
	}
}

// TestTwoRegionExampleWiresGossip checks that both mesh regions of the
// example share the keyring and seeds and have their own public URL.
func TestTwoRegionExampleWiresGossip(t *testing.T) {
	body := moduleBody(t, filepath.Join(repoRoot(t), "infra", "terraform", "examples", "two-region"))
	urls := map[string]bool{}
	for _, name := range []string{"mesh_primary", "mesh_secondary"} {
		t.Run(name, func(t *testing.T) {
			attrs := findBlock(t, body, "module", name).Body.Attributes
			for _, a := range []string{"gossip_keyring", "discovery_regions", "gossip_peer_cidrs", "public_url", "catalog_s3_uri", "auth_url"} {
				if _, ok := attrs[a]; !ok {
					t.Errorf("got no %s", a)
				}
			}
			if a, ok := attrs["public_url"]; ok {
				r := a.Expr.Range()
				src, _ := os.ReadFile(r.Filename)
				urls[string(r.SliceBytes(src))] = true
			}
		})
	}
	if len(urls) != 2 {
		t.Errorf("got public URLs %v, want one per region", urls)
	}
}
