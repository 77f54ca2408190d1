package meshnode

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/postern/postern/pkg/gossip"
)

func TestRoster(t *testing.T) {
	path := filepath.Join(t.TempDir(), "members.json")
	r, err := openRoster(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m := func(id string, s gossip.State) gossip.Member {
		return gossip.Member{Meta: gossip.Meta{ID: id}, State: s}
	}
	if err := r.observe([]gossip.Member{m("a", gossip.StateAlive), m("b", gossip.StateAlive), m("c", gossip.StateAlive)}, t0); err != nil {
		t.Fatal(err)
	}
	// A node that dies is still known (a partition must not make a
	// minority look like a majority), across a restart; one that left is
	// not; one gone for longer than rosterMemory is forgotten.
	r.observe([]gossip.Member{m("a", gossip.StateAlive), m("b", gossip.StateDead), m("c", gossip.StateLeft)}, t0.Add(time.Minute))
	again, err := openRoster(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.known(t0.Add(2*time.Minute), "x"); !slices.Equal(got, []string{"a", "b", "x"}) {
		t.Fatalf("known after a restart: %v, want [a b x]", got)
	}
	if got := again.known(t0.Add(rosterMemory + 2*time.Minute)); len(got) != 0 {
		t.Fatalf("known after the memory: %v, want none", got)
	}
	os.WriteFile(path, []byte("{not json"), 0o600)
	if _, err := openRoster(path); err == nil {
		t.Fatal("a corrupt roster opened")
	}
}

func TestOwnerOf(t *testing.T) {
	members := []gossip.Member{{Meta: gossip.Meta{ID: "a"}}, {Meta: gossip.Meta{ID: "b"}}, {Meta: gossip.Meta{ID: "c"}}}
	counts := map[string]int{}
	for i := range 3000 {
		id := fmt.Sprintf("token-%d", i)
		o := ownerOf(id, members)
		// The owner does not depend on the order the members are listed in.
		if o2 := ownerOf(id, []gossip.Member{members[2], members[0], members[1]}); o2.ID != o.ID {
			t.Fatalf("%s: owner %s or %s depending on order", id, o.ID, o2.ID)
		}
		counts[o.ID]++
		// Without the owner, another node owns it: only its tokens move.
		var rest []gossip.Member
		for _, mb := range members {
			if mb.ID != "b" {
				rest = append(rest, mb)
			}
		}
		if o.ID != "b" && ownerOf(id, rest).ID != o.ID {
			t.Fatalf("%s moved from %s although its owner stayed", id, o.ID)
		}
	}
	for id, n := range counts {
		if n < 800 {
			t.Errorf("node %s owns %d of 3000 tokens, want about 1000", id, n)
		}
	}
}
