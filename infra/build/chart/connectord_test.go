package chart

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
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
			case "apps/v1/Deployment":
				obj = &appsv1.Deployment{}
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

// base is a value set of mode deployment (the default).
func base() map[string]any {
	return map[string]any{"meshURL": "https://mesh.example.com", "group": "hq", "allow": []any{"10.1.0.0/16:443", "intranet.corp"}}
}

// baseSts is a value set of mode statefulset.
func baseSts() map[string]any {
	return map[string]any{"mode": "statefulset", "meshURL": "https://mesh.example.com", "tokenSecret": "hq-tokens", "allow": []any{"10.1.0.0/16:443", "intranet.corp"}}
}

// workload is the chart's Deployment or StatefulSet.
type workload struct {
	kind     string
	replicas int32
	tmpl     corev1.PodTemplateSpec
	sts      *appsv1.StatefulSet // mode statefulset
	dep      *appsv1.Deployment  // mode deployment
}

func (w *workload) spec() corev1.PodSpec { return w.tmpl.Spec }

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

// chartCase is one value set of the chart and what its objects must show.
type chartCase struct {
	name   string
	values map[string]any
	check  func(t *testing.T, w *workload, pdb *policyv1.PodDisruptionBudget)
}

// chartCases are the value sets TestConnectordChart renders; between them
// they set every key of values.yaml to something other than its default
// (TestConnectordChartCoversEveryValue holds them to that).
func chartCases() []chartCase {
	return []chartCase{
		{"defaults", base(), func(t *testing.T, w *workload, pdb *policyv1.PodDisruptionBudget) {
			aa := w.spec().Affinity.PodAntiAffinity
			if len(aa.PreferredDuringSchedulingIgnoredDuringExecution) != 2 || len(aa.RequiredDuringSchedulingIgnoredDuringExecution) != 0 {
				t.Errorf("soft anti-affinity: %+v", aa)
			}
			c := w.spec().Containers[0]
			if c.Image != "ghcr.io/postern/connectord:"+chartAppVersion(t) || c.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("image %s %s, want the appVersion's tag", c.Image, c.ImagePullPolicy)
			}
			if !slices.Contains(c.Args, "--allow=10.1.0.0/16:443,intranet.corp") || slices.Contains(c.Args, "--allow-any") {
				t.Errorf("args %v", c.Args)
			}
			if w.kind != "Deployment" {
				t.Fatalf("default mode: got a %s, want a Deployment", w.kind)
			}
			if ru := w.dep.Spec.Strategy.RollingUpdate; w.dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru.MaxUnavailable.IntValue() != 1 || ru.MaxSurge.IntValue() != 1 {
				t.Errorf("strategy %+v", w.dep.Spec.Strategy)
			}
			checkServiceAccountToken(t, w, "hq", "postern", 3600)
		}},
		{"statefulset defaults", baseSts(), func(t *testing.T, w *workload, pdb *policyv1.PodDisruptionBudget) {
			if w.kind != "StatefulSet" {
				t.Fatalf("mode statefulset: got a %s", w.kind)
			}
			pvc := w.sts.Spec.VolumeClaimTemplates
			if len(pvc) != 1 || pvc[0].Spec.StorageClassName != nil || pvc[0].Spec.Resources.Requests.Storage().String() != "16Mi" {
				t.Errorf("state volume %+v", pvc)
			}
		}},
		{"another group, audience and token lifetime", with(base(), "group", "k8s-eu", "serviceAccountToken", map[string]any{"audience": "postern-eu", "expirationSeconds": 600}),
			func(t *testing.T, w *workload, pdb *policyv1.PodDisruptionBudget) {
				checkServiceAccountToken(t, w, "k8s-eu", "postern-eu", 600)
			}},
		{"hard anti-affinity, three replicas, pinned digest", with(base(), "replicas", 3, "podAntiAffinity", "hard",
			"image", map[string]any{"digest": "sha256:" + strings.Repeat("ab", 32)}), func(t *testing.T, w *workload, pdb *policyv1.PodDisruptionBudget) {
			if w.replicas != 3 {
				t.Errorf("replicas %d", w.replicas)
			}
			if req := w.spec().Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution; len(req) != 1 || req[0].TopologyKey != "kubernetes.io/hostname" {
				t.Errorf("hard anti-affinity: %+v", req)
			}
			if img := w.spec().Containers[0].Image; img != "ghcr.io/postern/connectord@sha256:"+strings.Repeat("ab", 32) {
				t.Errorf("image %s, want the digest", img)
			}
		}},
		{"allow any, mesh CA, long drain", with(base(), "allow", []any{}, "allowAny", true, "meshCAConfigMap", "mesh-ca", "drainTimeoutSeconds", 120),
			func(t *testing.T, w *workload, pdb *policyv1.PodDisruptionBudget) {
				args := w.spec().Containers[0].Args
				if !slices.Contains(args, "--allow-any") || !slices.Contains(args, "--mesh-ca=/etc/postern/mesh-ca/ca.pem") || !slices.Contains(args, "--drain-timeout=120s") {
					t.Errorf("args %v", args)
				}
				if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--allow=") }) {
					t.Errorf("args %v: --allow with allowAny", args)
				}
				if g := *w.spec().TerminationGracePeriodSeconds; g != 135 {
					t.Errorf("grace %d, want 135", g)
				}
				var ca bool
				for _, v := range w.spec().Volumes {
					ca = ca || (v.ConfigMap != nil && v.ConfigMap.Name == "mesh-ca")
				}
				if !ca {
					t.Error("no mesh-ca ConfigMap volume")
				}
			}},
		{"every other key", with(baseSts(), "replicas", 4, "maxUnavailable", 2, "attachK", 3, "logLevel", "debug",
			"image", map[string]any{"repository": "registry.corp/postern/connectord", "tag": "9.8.7", "pullPolicy": "Always"},
			"persistence", map[string]any{"size": "64Mi", "storageClassName": "fast"},
			"spreadAcrossZones", false,
			"resources", map[string]any{"requests": map[string]any{"cpu": "10m", "memory": "32Mi"}, "limits": map[string]any{"memory": "128Mi"}},
			"nodeSelector", map[string]any{"corp/zone": "dmz"},
			"tolerations", []any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "postern", "effect": "NoSchedule"}},
			"podAnnotations", map[string]any{"corp/owner": "netops"},
			"extraArgs", []any{"--reevaluate=10m", "--carrier=stream"}),
			func(t *testing.T, w *workload, pdb *policyv1.PodDisruptionBudget) {
				spec := w.spec()
				c := spec.Containers[0]
				if w.replicas != 4 || pdb.Spec.MaxUnavailable.IntValue() != 2 {
					t.Errorf("replicas %d, budget %v", w.replicas, pdb.Spec.MaxUnavailable)
				}
				if c.Image != "registry.corp/postern/connectord:9.8.7" || c.ImagePullPolicy != corev1.PullAlways {
					t.Errorf("image %s %s", c.Image, c.ImagePullPolicy)
				}
				for _, a := range []string{"--attach-k=3", "--log-level=debug", "--reevaluate=10m", "--carrier=stream"} {
					if !slices.Contains(c.Args, a) {
						t.Errorf("args %v, want %s", c.Args, a)
					}
				}
				pvc := w.sts.Spec.VolumeClaimTemplates
				if len(pvc) != 1 || pvc[0].Spec.StorageClassName == nil || *pvc[0].Spec.StorageClassName != "fast" || pvc[0].Spec.Resources.Requests.Storage().String() != "64Mi" {
					t.Errorf("state volume %+v", pvc)
				}
				if p := spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution; len(p) != 1 || p[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" {
					t.Errorf("spreadAcrossZones false: %+v", p)
				}
				if c.Resources.Limits.Memory().String() != "128Mi" || c.Resources.Requests.Cpu().String() != "10m" {
					t.Errorf("resources %+v", c.Resources)
				}
				if spec.NodeSelector["corp/zone"] != "dmz" || len(spec.Tolerations) != 1 || spec.Tolerations[0].Value != "postern" || spec.Tolerations[0].Effect != corev1.TaintEffectNoSchedule {
					t.Errorf("placement %v %+v", spec.NodeSelector, spec.Tolerations)
				}
				if w.tmpl.Annotations["corp/owner"] != "netops" {
					t.Errorf("annotations %v", w.tmpl.Annotations)
				}
			}},
	}
}

// chartAppVersion is the chart's appVersion.
func chartAppVersion(t *testing.T) string {
	t.Helper()
	ch, err := loader.Load(filepath.Join("..", "..", "charts", "connectord"))
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return ch.Metadata.AppVersion
}

// TestConnectordChart renders the chart for several value sets, in both
// modes, and checks what each promises: at least two connectors, a budget
// that lets only one go at a time, anti-affinity, the identity (mode
// deployment: the pod's projected ServiceAccount token for the mesh's
// audience, state on an emptyDir, no stored secret; mode statefulset: the
// one-time token from the Secret), probes of /healthz and /readyz, no
// privileges and a read-only root filesystem, and a grace period longer
// than the drain.
func TestConnectordChart(t *testing.T) {
	runFlags := connectordFlags(t, "run")
	for _, tt := range chartCases() {
		t.Run(tt.name, func(t *testing.T) {
			out, err := render(t, tt.values)
			if err != nil {
				t.Fatal(err)
			}
			objs := objects(t, out)
			if len(objs["StatefulSet"])+len(objs["Deployment"]) != 1 || len(objs["PodDisruptionBudget"]) != 1 || len(objs["ServiceAccount"]) != 1 {
				t.Fatalf("objects: %v", objs)
			}
			w := &workload{}
			if d := objs["Deployment"]; len(d) == 1 {
				w.dep = d[0].(*appsv1.Deployment)
				w.kind, w.replicas, w.tmpl = "Deployment", *w.dep.Spec.Replicas, w.dep.Spec.Template
			} else {
				w.sts = objs["StatefulSet"][0].(*appsv1.StatefulSet)
				w.kind, w.replicas, w.tmpl = "StatefulSet", *w.sts.Spec.Replicas, w.sts.Spec.Template
			}
			pdb := objs["PodDisruptionBudget"][0].(*policyv1.PodDisruptionBudget)
			checkCommon(t, w, pdb)
			checkArgs(t, w, runFlags)
			tt.check(t, w, pdb)
		})
	}
}

// TestConnectordChartCoversEveryValue: every key of values.yaml is set to
// something other than its default by at least one of the rendered value
// sets, so a key added to the chart without a rendering test fails here.
func TestConnectordChartCoversEveryValue(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "charts", "connectord", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var defaults map[string]any
	if err := yaml.Unmarshal(raw, &defaults); err != nil {
		t.Fatal(err)
	}
	want := leaves("", defaults)
	if len(want) < 20 {
		t.Fatalf("values.yaml has only %d keys: %v", len(want), want)
	}
	for key, def := range want {
		covered := false
		for _, c := range chartCases() {
			if v, ok := leaves("", c.values)[key]; ok && !reflect.DeepEqual(v, def) {
				covered = true
			}
		}
		if !covered {
			t.Errorf("no rendered value set changes %s from its default %v", key, def)
		}
	}
}

// leaves flattens m to its dotted keys; maps under resources, nodeSelector,
// tolerations and podAnnotations (free-form Kubernetes values) count as
// one key each.
func leaves(prefix string, m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		key := prefix + k
		if sub, ok := v.(map[string]any); ok && !slices.Contains([]string{"resources", "nodeSelector", "podAnnotations"}, key) {
			for kk, vv := range leaves(key+".", sub) {
				out[kk] = vv
			}
			continue
		}
		out[key] = v
	}
	return out
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
func checkArgs(t *testing.T, w *workload, runFlags map[string]bool) {
	t.Helper()
	c := w.spec().Containers[0]
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

func checkCommon(t *testing.T, w *workload, pdb *policyv1.PodDisruptionBudget) {
	t.Helper()
	spec := w.spec()
	if mu := pdb.Spec.MaxUnavailable.IntValue(); w.replicas < 2 || mu < 1 || mu >= int(w.replicas) {
		t.Errorf("replicas %d, budget %v", w.replicas, pdb.Spec.MaxUnavailable)
	}
	for k, v := range pdb.Spec.Selector.MatchLabels {
		if w.tmpl.Labels[k] != v {
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
	switch w.kind {
	case "StatefulSet":
		if tokens == nil || tokens.Secret.SecretName != "hq-tokens" || !slices.Contains(c.Args, "--enroll-token-file=/etc/postern/tokens/$(POD_NAME)") {
			t.Errorf("token: volume %+v args %v", tokens, c.Args)
		}
	case "Deployment":
		// No stored secret at all: the identity is the pod's.
		if tokens != nil || slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--enroll-token-file") }) {
			t.Errorf("a Deployment with a token Secret: volume %+v args %v", tokens, c.Args)
		}
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
		{with(baseSts(), "tokenSecret", ""), "tokenSecret"},
		{with(base(), "tokenSecret", "hq-tokens"), "tokenSecret"},
		{with(base(), "group", ""), "group"},
		{with(base(), "group", "HQ!"), "group"},
		{with(baseSts(), "group", "hq"), "group"},
		{with(base(), "mode", "daemonset"), "mode"},
		{with(base(), "serviceAccountToken", map[string]any{"audience": ""}), "serviceAccountToken.audience"},
		{with(base(), "serviceAccountToken", map[string]any{"expirationSeconds": 300}), "expirationSeconds"},
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

// checkServiceAccountToken: a Deployment's pods enrol in group with a
// projected ServiceAccount token for audience (mounted read-only where
// --enroll-oidc-token-file reads it, lifetime expiration seconds, never
// the API server's token), and keep their key and credential on an
// emptyDir.
func checkServiceAccountToken(t *testing.T, w *workload, group, audience string, expiration int64) {
	t.Helper()
	spec := w.spec()
	c := spec.Containers[0]
	if !slices.Contains(c.Args, "--enroll-oidc-token-file=/var/run/secrets/postern/token") || !slices.Contains(c.Args, "--enroll-group="+group) {
		t.Errorf("args %v, want enrolment by the ServiceAccount token in group %s", c.Args, group)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	sa := vols["sa-token"].Projected
	if sa == nil || len(sa.Sources) != 1 || sa.Sources[0].ServiceAccountToken == nil {
		t.Fatalf("sa-token volume %+v, want one projected ServiceAccount token", vols["sa-token"])
	}
	tok := sa.Sources[0].ServiceAccountToken
	if tok.Audience != audience || tok.ExpirationSeconds == nil || *tok.ExpirationSeconds != expiration || tok.Path != "token" {
		t.Errorf("projected token %+v, want audience %s, %ds, path token", tok, audience, expiration)
	}
	if st := vols["state"]; st.EmptyDir == nil {
		t.Errorf("state volume %+v, want an emptyDir (the identity dies with the pod)", st)
	}
	var mounted bool
	for _, m := range c.VolumeMounts {
		mounted = mounted || (m.Name == "sa-token" && m.MountPath == "/var/run/secrets/postern" && m.ReadOnly)
	}
	if !mounted {
		t.Errorf("mounts %+v, want sa-token read-only at /var/run/secrets/postern", c.VolumeMounts)
	}
}
