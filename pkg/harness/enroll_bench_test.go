package harness

import (
	"context"
	"testing"
	"time"

	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/simnet"
	"github.com/postern/postern/pkg/wgkey"
)

// BenchmarkEnroll measures one enrolment over HTTPS on loopback: a lone
// node (the token burnt locally), and the first node of a three-node mesh
// in one region, where the nodes vote so that a token is used once across
// the mesh.
func BenchmarkEnroll(b *testing.B) {
	b.Run("lone", func(b *testing.B) {
		h, err := Start(b.Context(), Options{Connectors: -1})
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		benchEnroll(b, h)
	})
	b.Run("mesh3", func(b *testing.B) {
		net := simnet.NewNetwork(simnet.DefaultMatrix(), 1)
		top := &Topology{Net: net, Groups: []GroupSpec{{ID: "hq"}},
			Nodes: []NodeSpec{{ID: "a", Region: "us-east-1"}, {ID: "b", Region: "us-east-1"}, {ID: "c", Region: "us-east-1"}}}
		h, err := Start(b.Context(), Options{Topology: top})
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		// The mesh tunnels handshake on the first calls: warm up.
		ctx, cancel := context.WithTimeout(b.Context(), 30*time.Second)
		defer cancel()
		for range 5 {
			enrolOnce(b, ctx, h)
		}
		benchEnroll(b, h)
	})
}

func benchEnroll(b *testing.B, h *Harness) {
	b.ReportAllocs()
	for b.Loop() {
		enrolOnce(b, b.Context(), h)
	}
}

func enrolOnce(b *testing.B, ctx context.Context, h *Harness) {
	tok, _, err := h.Authority.MintEnrollToken("hq", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	key, _ := wgkey.Generate()
	cl := &enroll.Client{BaseURL: h.Meshes()[0].URL, HTTPClient: h.APIClient()}
	if _, err := cl.Enroll(ctx, tok, key, "bench"); err != nil {
		b.Fatal(err)
	}
}
