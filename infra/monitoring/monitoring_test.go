package monitoring

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// synthetic are the series Prometheus itself makes.
var synthetic = []string{"up"}

// requiredAlerts are the alerts an operator of Postern needs.
var requiredAlerts = []string{
	"PosternMeshNodeDown", "PosternMeshNodeDeadInGossip", "PosternConnectorDown", "PosternNoConnectorForGroup",
	"PosternConnectorHandshakeStale", "PosternCatalogReloadFailing", "PosternHigh5xxRatio",
	"PosternTruncatedResponses", "PosternAuthFailuresSpike", "PosternNodeCredentialExpiresSoon",
	"PosternTLSCertificateExpiresSoon",
}

// exported reads the metric names meshd and connectord export
// (metrics.txt, checked against a running mesh by
// pkg/harness/meshtest's TestMetricNamesList).
func exported(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile("metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			names[l] = true
		}
	}
	if len(names) < 20 {
		t.Fatalf("metrics.txt lists %d names: regenerate it", len(names))
	}
	for _, s := range synthetic {
		names[s] = true
	}
	return names
}

var promql = parser.NewParser(parser.Options{})

// metricNames returns the metric names an expression selects; a selector
// without a fixed name is an error.
func metricNames(expr string) ([]string, error) {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			err = errNoName
		}
		names = append(names, name)
		return nil
	})
	return names, err
}

var errNoName = errors.New("a selector names no metric")

func TestAlertRules(t *testing.T) {
	groups, errs := rulefmt.ParseFile("prometheus/alerts.yml", false, model.LegacyValidation, promql, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("rule parser: %v", err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	known := exported(t)
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				known[r.Record] = true
			}
		}
	}
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			what := r.Alert + r.Record
			names, err := metricNames(r.Expr)
			if err != nil {
				t.Errorf("%s: %v", what, err)
			}
			for _, n := range names {
				if !known[n] {
					t.Errorf("%s names %s, which neither meshd nor connectord exports (metrics.txt) nor a rule records", what, n)
				}
			}
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: wants a summary and a description", r.Alert)
			}
		}
	}
	for _, a := range requiredAlerts {
		if !slices.Contains(alerts, a) {
			t.Errorf("alert %s is missing", a)
		}
	}
}

// grafanaVars are the dashboard's variables, replaced by values PromQL
// parses before the check.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "${app}", ".*", "$app", ".*")

var labelValues = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$`)

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile("grafana/postern.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string  `json:"uid"`
		Title      string  `json:"title"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("grafana/postern.json: %v", err)
	}
	if dash.UID == "" || dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatalf("the dashboard needs a uid, a title and panels")
	}
	known := exported(t)
	check := func(where, expr string) {
		names, err := metricNames(grafanaVars.Replace(expr))
		if err != nil {
			t.Errorf("%s: %q: %v", where, expr, err)
		}
		for _, n := range names {
			if !known[n] {
				t.Errorf("%s names %s, which neither meshd nor connectord exports (metrics.txt)", where, n)
			}
		}
	}
	for _, v := range dash.Templating.List {
		if v.Definition == "" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(metric, label)", v.Name, v.Definition)
			continue
		}
		check("variable "+v.Name, m[1])
	}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d repeats", p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
				t.Errorf("panel %q: grid position %+v outside the 24 columns", p.Title, p.GridPos)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 || p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: wants queries on the ${datasource} variable", p.Title)
			}
			for _, tg := range p.Targets {
				check("panel "+p.Title, tg.Expr)
			}
		}
	}
	walk(dash.Panels)
}

// TestCheckCatchesUnknownNames: the check fails on a renamed metric, a
// selector without a name and an expression that does not parse.
func TestCheckCatchesUnknownNames(t *testing.T) {
	known := exported(t)
	names, err := metricNames(`rate(postern_mesh_requests_totl[5m])`)
	if err != nil || len(names) != 1 || known[names[0]] {
		t.Errorf("a misspelt name: got %v, %v, want one unknown name", names, err)
	}
	if _, err := metricNames(`{app="x"}`); err == nil {
		t.Error("a selector without a metric name passed")
	}
	if _, err := metricNames(`sum(rate(postern_mesh_requests_total[5m])`); err == nil {
		t.Error("an unbalanced expression parsed")
	}
	if _, errs := rulefmt.Parse([]byte("groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: up ==\n"), false,
		model.LegacyValidation, promql, slog.New(slog.DiscardHandler)); len(errs) == 0 {
		t.Error("the rule parser accepted a broken expression")
	}
}
