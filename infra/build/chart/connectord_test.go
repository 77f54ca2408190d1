package chart

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// render renders the connectord chart with values over its defaults and
// returns the manifests by template name.
func render(t *testing.T, values map[string]any) (map[string]string, error) {
	t.Helper()
	ch, err := loader.Load(filepath.Join("..", "..", "charts", "connectord"))
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	caps := common.DefaultCapabilities.Copy()
	vals, err := util.ToRenderValues(ch, values, common.ReleaseOptions{Name: "hq", Namespace: "postern", IsInstall: true}, caps)
	if err != nil {
		return nil, err
	}
	return engine.Render(ch, vals)
}

// objects decodes every document of the rendered manifests strictly (an
// unknown or misplaced field is an error) and returns them by kind.
func objects(t *testing.T, out map[string]string) map[string][]any {
	t.Helper()
	byKind := map[string][]any{}
	for name, text := range out {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		for _, doc := range strings.Split(text, "\n---") {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var meta struct{ Kind, APIVersion string }
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
			var obj any
			switch meta.APIVersion + "/" + meta.Kind {
			case "apps/v1/StatefulSet":
				obj = &appsv1.StatefulSet{}
			case "policy/v1/PodDisruptionBudget":
				obj = &policyv1.PodDisruptionBudget{}
			case "v1/ServiceAccount":
				obj = &corev1.ServiceAccount{}
			default:
				t.Fatalf("%s: unexpected object %s %s", name, meta.APIVersion, meta.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s: %s does not decode strictly: %v\n%s", name, meta.Kind, err, doc)
			}
			byKind[meta.Kind] = append(byKind[meta.Kind], obj)
		}
	}
	return byKind
}

func stripComments(doc string) string {
	var b bytes.Buffer
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func base() map[string]any {
	return map[string]any{"meshURL": "https://mesh.example.com", "tokenSecret": "hq-tokens", "allow": []any{"10.1.0.0/16:443", "intranet.corp"}}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// TestConnectordChart renders the chart for several value sets and checks
// what each promises: at least two connectors, a budget that lets only one
// go at a time, anti-affinity, the token from the Secret, probes of
// /healthz and /readyz, no privileges and a read-only root filesystem, and
// a grace period longer than the drain.
func TestConnectordChart(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		check  func(t *testing.T, sts *appsv1.StatefulSet, pdb *policyv1.PodDisruptionBudget)
	}{
		{"defaults", base(), func(t *testing.T, sts *appsv1.StatefulSet, pdb *policyv1.PodDisruptionBudget) {
			aa := sts.Spec.Template.Spec.Affinity.PodAntiAffinity
			if len(aa.PreferredDuringSchedulingIgnoredDuringExecution) != 2 || len(aa.RequiredDuringSchedulingIgnoredDuringExecution) != 0 {
				t.Errorf("soft anti-affinity: %+v", aa)
			}
		}},
		{"hard anti-affinity, three replicas, pinned digest", with(base(), "replicas", 3, "podAntiAffinity", "hard",
			"image", map[string]any{"digest": "sha256:" + strings.Repeat("ab", 32)}), func(t *testing.T, sts *appsv1.StatefulSet, pdb *policyv1.PodDisruptionBudget) {
			if *sts.Spec.Replicas != 3 {
				t.Errorf("replicas %d", *sts.Spec.Replicas)
			}
			if req := sts.Spec.Template.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution; len(req) != 1 || req[0].TopologyKey != "kubernetes.io/hostname" {
				t.Errorf("hard anti-affinity: %+v", req)
			}
			if img := sts.Spec.Template.Spec.Containers[0].Image; !strings.Contains(img, "@sha256:abab") {
				t.Errorf("image %s, want the digest", img)
			}
		}},
		{"allow any, mesh CA, long drain", with(base(), "allow", []any{}, "allowAny", true, "meshCAConfigMap", "mesh-ca", "drainTimeoutSeconds", 120),
			func(t *testing.T, sts *appsv1.StatefulSet, pdb *policyv1.PodDisruptionBudget) {
				args := sts.Spec.Template.Spec.Containers[0].Args
				if !slices.Contains(args, "--allow-any") || !slices.Contains(args, "--mesh-ca=/etc/postern/mesh-ca/ca.pem") || !slices.Contains(args, "--drain-timeout=120s") {
					t.Errorf("args %v", args)
				}
				if g := *sts.Spec.Template.Spec.TerminationGracePeriodSeconds; g != 135 {
					t.Errorf("grace %d, want 135", g)
				}
			}},
	}
	runFlags := connectordFlags(t, "run")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := render(t, tt.values)
			if err != nil {
				t.Fatal(err)
			}
			objs := objects(t, out)
			if len(objs["StatefulSet"]) != 1 || len(objs["PodDisruptionBudget"]) != 1 || len(objs["ServiceAccount"]) != 1 {
				t.Fatalf("objects: %v", objs)
			}
			sts := objs["StatefulSet"][0].(*appsv1.StatefulSet)
			pdb := objs["PodDisruptionBudget"][0].(*policyv1.PodDisruptionBudget)
			checkCommon(t, sts, pdb)
			checkArgs(t, sts, runFlags)
			tt.check(t, sts, pdb)
		})
	}
}

// connectordFlags returns the flags the real connectord's command takes,
// from its help.
func connectordFlags(t *testing.T, command string) map[string]bool {
	t.Helper()
	cmd := exec.Command("go", "run", "./connectord", command, "--help")
	cmd.Dir = filepath.Join("..", "..", "..")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("connectord %s --help: %v\n%s", command, err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+--([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 5 {
		t.Fatalf("connectord %s --help lists no flags:\n%s", command, out)
	}
	return flags
}

// checkArgs: the container runs "connectord run" with flags it takes
// (a renamed flag would crash-loop every pod), and the probes run
// "connectord probe".
func checkArgs(t *testing.T, sts *appsv1.StatefulSet, runFlags map[string]bool) {
	t.Helper()
	c := sts.Spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "run" {
		t.Fatalf("args %v, want run first", c.Args)
	}
	for _, a := range c.Args[1:] {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !runFlags[name] {
			t.Errorf("connectord run does not take %q", a)
		}
	}
	for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		if p == nil || p.Exec == nil || len(p.Exec.Command) != 3 || p.Exec.Command[1] != "probe" {
			t.Errorf("probe %+v, want connectord probe URL", p)
		}
	}
}

func checkCommon(t *testing.T, sts *appsv1.StatefulSet, pdb *policyv1.PodDisruptionBudget) {
	t.Helper()
	spec := sts.Spec.Template.Spec
	if *sts.Spec.Replicas < 2 || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("replicas %d, budget %v", *sts.Spec.Replicas, pdb.Spec.MaxUnavailable)
	}
	for k, v := range pdb.Spec.Selector.MatchLabels {
		if sts.Spec.Template.Labels[k] != v {
			t.Errorf("the budget's selector %s=%s does not select the pods", k, v)
		}
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("containers: %d", len(spec.Containers))
	}
	c := spec.Containers[0]
	psc, sc := spec.SecurityContext, c.SecurityContext
	if !*psc.RunAsNonRoot || *psc.RunAsUser != 65532 || *sc.AllowPrivilegeEscalation || *sc.Privileged || !*sc.ReadOnlyRootFilesystem ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 || spec.HostNetwork {
		t.Errorf("security: pod %+v container %+v", psc, sc)
	}
	if *spec.AutomountServiceAccountToken {
		t.Error("the service account token is mounted")
	}
	for probe, want := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz", c.StartupProbe: "/healthz"} {
		if probe == nil || probe.Exec == nil || !strings.HasSuffix(strings.Join(probe.Exec.Command, " "), "127.0.0.1:7801"+want) {
			t.Errorf("probe %+v, want %s", probe, want)
		}
	}
	var drain int64
	for _, a := range c.Args {
		if d, ok := strings.CutPrefix(a, "--drain-timeout="); ok {
			fmt.Sscanf(d, "%ds", &drain)
		}
	}
	if drain == 0 || *spec.TerminationGracePeriodSeconds <= drain {
		t.Errorf("grace %d, drain %d: the drain must finish within the grace period", *spec.TerminationGracePeriodSeconds, drain)
	}
	var tokens *corev1.Volume
	for i := range spec.Volumes {
		if spec.Volumes[i].Secret != nil {
			tokens = &spec.Volumes[i]
		}
	}
	if tokens == nil || tokens.Secret.SecretName != "hq-tokens" || !slices.Contains(c.Args, "--enroll-token-file=/etc/postern/tokens/$(POD_NAME)") {
		t.Errorf("token: volume %+v args %v", tokens, c.Args)
	}
	for _, e := range c.Env {
		if strings.Contains(strings.ToLower(e.Name), "token") && e.Value != "" {
			t.Errorf("a token in the environment: %s", e.Name)
		}
	}
}

// TestConnectordChartRefuses: values that cannot work fail the render
// with a message naming the value.
func TestConnectordChartRefuses(t *testing.T) {
	for _, tt := range []struct {
		values map[string]any
		want   string
	}{
		{with(base(), "meshURL", ""), "meshURL"},
		{with(base(), "meshURL", "http://mesh.example.com"), "meshURL"},
		{with(base(), "tokenSecret", ""), "tokenSecret"},
		{with(base(), "allow", []any{}), "allow"},
		{with(base(), "replicas", 1), "replicas"},
		{with(base(), "podAntiAffinity", "maybe"), "podAntiAffinity"},
		{with(base(), "maxUnavailable", 2), "maxUnavailable"},
	} {
		_, err := render(t, tt.values)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: got %v, want an error naming %s", tt.values, err, tt.want)
		}
	}
}
