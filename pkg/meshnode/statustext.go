package meshnode

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteStatus prints st as the operator reads it on a terminal (what
// "meshd status" shows by default): the node, then one table each for the
// connectors attached here, the mesh nodes, the attachments known through
// the gossip and the chosen routes. Durations carry their unit; an empty
// table says "none".
func WriteStatus(w io.Writer, st Status) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "node %s, region %s\n", st.Node, orDash(st.Region))
	fmt.Fprintf(ew, "  tunnel address %s, WireGuard port %d, public key %s\n", st.TunnelAddr, st.WGPort, st.PublicKey)
	fmt.Fprintf(ew, "  catalogue: %d apps (hash %s), open stream carriers: %d\n", st.Apps, shortHash(st.CatalogHash), st.Streams)
	fmt.Fprintln(ew, "\nconnectors attached here:")
	table(ew, len(st.Connectors), "ID\tGROUP\tSTATE\tCARRIER\tRTT\tIN FLIGHT\tATTACHED FOR", func(tw io.Writer) {
		for _, c := range st.Connectors {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", c.ID, c.Group, state(c.Alive, c.Draining), orDash(c.Carrier),
				msText(c.RTTMs), c.Outstanding, since(c.Attached))
		}
	})
	if len(st.AssertionKeys) > 0 {
		fmt.Fprintf(ew, "\nassertion keys (/.postern/jwks.json, issuer %s):\n", st.AssertionIssuer)
		table(ew, len(st.AssertionKeys), "NODE\tREGION\tKID\tNODE PRESENT\tCREDENTIAL EXPIRES", func(tw io.Writer) {
			for _, k := range st.AssertionKeys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Node, k.Region, k.KeyID, yesNo(k.Present), k.Expires.UTC().Format(time.RFC3339))
			}
		})
	}
	if st.Mesh == nil {
		fmt.Fprintln(ew, "\nnot in a cluster (a lone node): every request goes to a connector attached here")
		return ew.err
	}
	fmt.Fprintln(ew, "\nmesh nodes:")
	table(ew, len(st.Mesh.Nodes), "ID\tREGION\tSTATE\tRTT ESTIMATE\tLOAD\tTUNNEL\tGOSSIP ADDRESS\tVERSION", func(tw io.Writer) {
		for _, n := range st.Mesh.Nodes {
			rtt := "unknown"
			if n.HasRTT {
				rtt = msText(n.RTTMs)
			}
			if n.ID == st.Node {
				rtt = "(this node)"
			}
			nstate := n.State
			if n.Draining {
				nstate += ", draining"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", n.ID, orDash(n.Region), nstate, rtt, n.Load,
				upDown(n.TunnelUp), n.GossipAddr, orDash(n.Version))
		}
	})
	fmt.Fprintln(ew, "\nattachments (through the gossip):")
	table(ew, len(st.Mesh.Attachments), "NODE\tCONNECTOR\tGROUP\tSTATE\tRTT\tIN FLIGHT", func(tw io.Writer) {
		for _, a := range st.Mesh.Attachments {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", a.Node, a.Connector, a.Group, state(a.Alive, a.Draining),
				msText(a.RTTMs), a.InFlight)
		}
	})
	fmt.Fprintln(ew, "\nroutes (meshd route explain --app X shows every path):")
	table(ew, len(st.Mesh.Routes), "GROUP\tCHOSEN PATHS\tCANDIDATES", func(tw io.Writer) {
		for _, r := range st.Mesh.Routes {
			chosen := strings.Join(r.Chosen, ", ")
			if chosen == "" {
				chosen = "none"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\n", r.Group, chosen, r.Candidates)
		}
	})
	return ew.err
}

// table prints header and the rows rows writes, indented, or "none".
func table(w io.Writer, n int, header string, rows func(io.Writer)) {
	if n == 0 {
		fmt.Fprintln(w, "  none")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  "+header)
	var b strings.Builder
	rows(&b)
	for _, line := range strings.SplitAfter(strings.TrimSuffix(b.String(), "\n"), "\n") {
		fmt.Fprint(tw, "  "+line)
	}
	fmt.Fprintln(tw)
	_ = tw.Flush()
}

func state(alive, draining bool) string {
	switch {
	case draining:
		return "draining"
	case alive:
		return "alive"
	}
	return "not answering"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no (kept for its last assertions)"
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

func msText(v float64) string { return fmt.Sprintf("%.1f ms", v) }

func since(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return orDash(h)
}

// errWriter keeps the first write error and drops later writes.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
