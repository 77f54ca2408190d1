package gossip

import (
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetrics(t *testing.T) {
	regs := map[string]*prometheus.Registry{}
	withReg := func(c *Config) { r := prometheus.NewRegistry(); regs[c.Meta.ID] = r; c.Registerer = r }
	a, b, _ := threeNodes(t, withReg)
	if err := a.SetAttachments([]Attachment{{Connector: "k", Alive: true}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitLong, "b sees a/k", func() bool { return hasAttachment(b, "a", "k", nil) })
	waitFor(t, waitLong, "b has probed", func() bool {
		return histCount(t, regs["b"]) > 0
	})
	b.refresh()
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"members alive", value(t, regs["b"], "postern_gossip_members", "alive"), 3},
		{"members dead", value(t, regs["b"], "postern_gossip_members", "dead"), 0},
		{"attachments", value(t, regs["b"], "postern_gossip_attachments", ""), 1},
		{"attachment in", min(value(t, regs["b"], "postern_gossip_messages_total", "in", "attachment"), 1), 1},
		{"attachment out", min(value(t, regs["a"], "postern_gossip_messages_total", "out", "attachment"), 1), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

// value returns the gauge or counter name whose label values are labels
// (sorted by label name, as Gather returns them; "" for none), or -1.
func value(tb testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i, lp := range m.GetLabel() {
				if i >= len(labels) || lp.GetValue() != labels[i] {
					continue metric
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// histCount returns the sample count of postern_gossip_rtt_seconds.
func histCount(tb testing.TB, reg *prometheus.Registry) uint64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "postern_gossip_rtt_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

func TestLoadOnlyUpdatesRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mn memNet
		a, b, _ := threeNodes(t, mn.opt(t))
		if err := a.UpdateMeta(func(m *Meta) { m.Version = "v1" }); err != nil { // sets metaSent now
			t.Fatal(err)
		}
		if err := a.UpdateMeta(func(m *Meta) { m.Load = 42 }); err != nil {
			t.Fatal(err)
		}
		a.metaMu.Lock()
		dirty := a.metaDirty
		a.metaMu.Unlock()
		if !dirty {
			t.Errorf("load-only change right after an update: got sent at once, want held")
		}
		if m, _ := member(a, "a"); m.Load != 42 {
			t.Errorf("local view of load: got %d, want 42", m.Load)
		}
		waitFor(t, waitLong, "b sees load 42 after the hold", func() bool {
			m, _ := member(b, "a")
			return m.Load == 42
		})
	})
}
