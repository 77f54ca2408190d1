package cli

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestNewRegistryBuildInfo(t *testing.T) {
	mfs, err := NewRegistry("meshd").Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "postern_build_info" || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gathered %v, want postern_build_info alone", mfs)
	}
	m := mfs[0].GetMetric()[0]
	if m.GetGauge().GetValue() != 1 {
		t.Errorf("value %v, want 1", m.GetGauge().GetValue())
	}
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	bi := ReadBuildInfo()
	want := map[string]string{"component": "meshd", "version": bi.Version, "goversion": runtime.Version()}
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, labels[k], v)
		}
	}
	if _, ok := labels["revision"]; !ok || len(labels) != 4 {
		t.Errorf("labels %v, want component, version, revision, goversion", labels)
	}
}

func TestBuildInfoCollectorModified(t *testing.T) {
	b := BuildInfo{Version: "1.2.3", Revision: "abc", Modified: true, GoVersion: "go1.26.8"}
	desc := make(chan *prometheus.Desc, 1)
	b.collector("connectord").Describe(desc)
	if s := (<-desc).String(); !strings.Contains(s, `revision="abc+modified"`) || !strings.Contains(s, `component="connectord"`) {
		t.Errorf("desc %s lacks the modified revision or the component", s)
	}
}
