package meshtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/gossip"
	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/simnet"
	"github.com/postern/postern/pkg/wgkey"
)

// startMesh starts a mesh of nodes over the default matrix; with auth the
// standard sign-in catalogue (group hq) is used, else one group "hq".
func startMesh(t testing.TB, nodes []harness.NodeSpec, conns []harness.ConnectorSpec, auth bool) (*harness.Harness, *simnet.Network) {
	t.Helper()
	net := simnet.NewNetwork(simnet.DefaultMatrix(), uint64(time.Now().UnixNano()))
	top := &harness.Topology{Net: net, Nodes: nodes, Connectors: conns}
	if !auth {
		top.Groups = []harness.GroupSpec{{ID: "hq"}}
	}
	opts := harness.Options{Topology: top, Auth: auth}
	if os.Getenv("POSTERN_TEST_LOG") != "" {
		opts.Logger = testLogger()
	}
	h, err := harness.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	waitTunnels(t, h)
	return h, net
}

// waitTunnels waits until every running node sees every running node
// alive with its mesh tunnel up.
func waitTunnels(t testing.TB, h *harness.Harness) {
	t.Helper()
	var why string
	err := harness.WaitFor(t.Context(), harness.Patience, func() bool {
		why = ""
		running := h.Running()
		for _, i := range running {
			up := 0
			for _, n := range h.Meshes()[i].Node.Status().Mesh.Nodes {
				if n.State == string(gossip.StateAlive) && n.TunnelUp {
					up++
				}
			}
			if up != len(running) {
				why = fmt.Sprintf("%s sees %d of %d nodes alive with a tunnel", h.Meshes()[i].ID, up, len(running))
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(why)
	}
}

// enrolAt enrols a new key with tok at mesh node i.
func enrolAt(t testing.TB, h *harness.Harness, i int, tok string) error {
	t.Helper()
	key, err := wgkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cl := &enroll.Client{BaseURL: h.Meshes()[i].URL, HTTPClient: h.APIClient()}
	_, err = cl.Enroll(t.Context(), tok, key, "race")
	return err
}

// apiCode returns the error code of an API refusal, "" for success.
func apiCode(err error) string {
	var ae *enroll.APIError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ae):
		return ae.Code
	}
	return "error: " + err.Error()
}

func mint(t testing.TB, h *harness.Harness) string {
	t.Helper()
	tok, _, err := h.Authority.MintEnrollToken("hq", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestTokenUsedOnceAcrossTheMesh presents each token at two nodes at the
// same instant: exactly one enrolment is accepted per round. During a
// partition the minority side refuses (503) while the majority side
// accepts, and the token stays used after the heal. Then the used-token
// record of a node is deleted while its peers are down (issue 14): the
// node refuses enrolments rather than accept a used token, and restores
// the record from its peers when they return.
func TestTokenUsedOnceAcrossTheMesh(t *testing.T) {
	h, net := startMesh(t, []harness.NodeSpec{{ID: "use1-a", Region: east}, {ID: "use1-b", Region: east}, {ID: "euw1-a", Region: west}}, nil, false)
	t.Run("concurrent", func(t *testing.T) {
		start := time.Now()
		refusals := map[string]int{}
		for round := range raceRounds {
			tok := mint(t, h)
			var wg sync.WaitGroup
			codes := make([]string, 2)
			gate := make(chan struct{})
			for i := range 2 {
				wg.Go(func() {
					<-gate
					codes[i] = apiCode(enrolAt(t, h, i, tok))
				})
			}
			close(gate)
			wg.Wait()
			accepted := 0
			for _, c := range codes {
				switch c {
				case "":
					accepted++
				case enroll.CodeTokenAlreadyUsed, enroll.CodeTokenCheckUnavailable:
					refusals[c]++
				default:
					t.Fatalf("round %d: unexpected answer %q", round, c)
				}
			}
			if accepted != 1 {
				t.Fatalf("round %d: %d enrolments accepted (%v), want exactly 1", round, accepted, codes)
			}
			if c := apiCode(enrolAt(t, h, 2, tok)); c != enroll.CodeTokenAlreadyUsed {
				t.Fatalf("round %d: the used token at the third node: got %q, want %s", round, c, enroll.CodeTokenAlreadyUsed)
			}
		}
		t.Logf("%d rounds of one token at two nodes at once: exactly one accepted each round; refusals %v; %v per round",
			raceRounds, refusals, (time.Since(start) / time.Duration(raceRounds)).Round(time.Millisecond))
	})
	t.Run("mesh node keys", func(t *testing.T) {
		// The attack of issue 13: a token holder enrols another mesh node's
		// key, attaches it at this node and detaches it, removing that
		// node's WireGuard peer and cutting the relay path. The enrolment
		// is refused; a credential for the key is refused at attach even
		// with a valid proof (made here with the node's own key); a detach
		// never removes a mesh peer.
		other := h.Meshes()[1]
		tok := mint(t, h)
		cl := &enroll.Client{BaseURL: h.Meshes()[0].URL, HTTPClient: h.APIClient()}
		body := enroll.EnrollRequest{Token: tok, PublicKey: other.Node.WireGuard().PublicKey(), Name: "mesh"}
		var ae *enroll.APIError
		if err := postEnroll(t, h, 0, body); !errors.As(err, &ae) || ae.Code != enroll.CodeKeyReserved {
			t.Fatalf("enrol of another node's key: got %v, want %s", err, enroll.CodeKeyReserved)
		}
		nodeKey, err := wgkey.Load(filepath.Join(other.Dir(), "wg.key"))
		if err != nil {
			t.Fatal(err)
		}
		cred, _, err := h.Authority.IssueCredential("mesh-as-connector-aaaaaaaa", "hq", nodeKey.Public(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cl.Key = nodeKey
		if _, err := cl.Attach(t.Context(), cred); !errors.As(err, &ae) || ae.Code != enroll.CodeKeyReserved {
			t.Fatalf("attach of another node's key: got %v, want %s", err, enroll.CodeKeyReserved)
		}
		if err := cl.Detach(t.Context(), cred, false); err != nil {
			t.Fatalf("detach: %v", err)
		}
		for _, n := range h.Meshes()[0].Node.Status().Mesh.Nodes {
			if n.ID == other.ID && !n.TunnelUp {
				t.Fatal("the detach cut the mesh tunnel to the other node")
			}
		}
		if c := apiCode(enrolAt(t, h, 0, tok)); c != "" {
			t.Fatalf("the token after the refusal: %q", c)
		}
	})
	t.Run("partition", func(t *testing.T) {
		net.Partition([]string{east}, []string{west})
		defer net.Heal()
		tok := mint(t, h)
		// The minority side refuses at once, before and after it notices.
		if c := apiCode(enrolAt(t, h, 2, tok)); c != enroll.CodeTokenCheckUnavailable {
			t.Fatalf("minority side: got %q, want %s", c, enroll.CodeTokenCheckUnavailable)
		}
		waitState(t, h, 0, "euw1-a", gossip.StateDead)
		waitState(t, h, 2, "use1-a", gossip.StateDead)
		if c := apiCode(enrolAt(t, h, 2, mint(t, h))); c != enroll.CodeTokenCheckUnavailable {
			t.Fatalf("minority side, partition detected: got %q, want %s", c, enroll.CodeTokenCheckUnavailable)
		}
		if c := apiCode(enrolAt(t, h, 0, tok)); c != "" {
			t.Fatalf("majority side: got %q, want the enrolment accepted", c)
		}
		net.Heal()
		waitTunnels(t, h)
		if err := harness.WaitFor(t.Context(), harness.Patience, func() bool {
			return apiCode(enrolAt(t, h, 2, tok)) == enroll.CodeTokenAlreadyUsed
		}); err != nil {
			t.Fatal("after the heal the former minority does not refuse the token used on the majority side")
		}
	})
	t.Run("lost record while the peers are down", func(t *testing.T) {
		tok := mint(t, h)
		if c := apiCode(enrolAt(t, h, 0, tok)); c != "" {
			t.Fatalf("enrol: %q", c)
		}
		h.KillMesh(1)
		h.KillMesh(2)
		h.KillMesh(0)
		if err := os.Remove(filepath.Join(h.Meshes()[0].Dir(), "used-tokens.json")); err != nil {
			t.Fatal(err)
		}
		if err := h.StartMesh(0); err != nil {
			t.Fatal(err)
		}
		for _, tk := range []string{tok, mint(t, h)} {
			if c := apiCode(enrolAt(t, h, 0, tk)); c != enroll.CodeTokenCheckUnavailable {
				t.Fatalf("node with a lost record, peers down: got %q, want %s", c, enroll.CodeTokenCheckUnavailable)
			}
		}
		for _, i := range []int{1, 2} {
			if err := h.StartMesh(i); err != nil {
				t.Fatal(err)
			}
		}
		waitTunnels(t, h)
		if err := harness.WaitFor(t.Context(), harness.Patience, func() bool {
			return apiCode(enrolAt(t, h, 0, tok)) == enroll.CodeTokenAlreadyUsed
		}); err != nil {
			t.Fatalf("the restored node does not refuse the used token: %q", apiCode(enrolAt(t, h, 0, tok)))
		}
		if c := apiCode(enrolAt(t, h, 0, mint(t, h))); c != "" {
			t.Fatalf("a new token after the restore: got %q, want it accepted", c)
		}
	})
}

// postEnroll posts a raw enrolment request to node i.
func postEnroll(t testing.TB, h *harness.Harness, i int, body enroll.EnrollRequest) error {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := h.APIClient().Post(h.Meshes()[i].URL+enroll.EnrollPath, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var er enroll.ErrorResponse
	json.NewDecoder(resp.Body).Decode(&er)
	return &enroll.APIError{Op: "enroll", Status: resp.StatusCode, Code: er.Error, Message: er.Message}
}

// waitState waits until node i sees node id in state.
func waitState(t testing.TB, h *harness.Harness, i int, id string, state gossip.State) {
	t.Helper()
	err := harness.WaitFor(t.Context(), harness.Patience, func() bool { return stateOf(h.Meshes()[i].Node, id) == string(state) })
	if err != nil {
		t.Fatalf("%s does not see %s %s", h.Meshes()[i].ID, id, state)
	}
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
