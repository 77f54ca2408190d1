package meshnode

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/postern/postern/pkg/gossip"
	"github.com/postern/postern/pkg/wgkey"
)

// rosterMemory is how long a node that stopped answering still counts
// among the mesh nodes this node knows (the gossip forgets failed members
// after as long): while it does, a partition cannot make a minority look
// like a majority, even across a restart.
const rosterMemory = time.Hour

// rosterRefresh is how stale a live node's "last seen" may get before it is
// written again.
const rosterRefresh = 10 * time.Minute

// roster is the persisted set of mesh nodes this node has seen alive,
// with when it last saw each: the electorate of token redemption. It is
// safe for concurrent use.
type roster struct {
	path string

	mu   sync.Mutex       // guards seen
	seen map[string]int64 // node id → unix seconds last seen alive
}

// openRoster loads the roster from path; a missing file is an empty
// roster, a corrupt one an error.
func openRoster(path string) (*roster, error) {
	r := &roster{path: path, seen: map[string]int64{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("meshnode: mesh members: %w", err)
	}
	if err := json.Unmarshal(b, &r.seen); err != nil {
		return nil, fmt.Errorf("meshnode: mesh members %s: corrupt, refusing to start (delete it only if no partition can be in progress): %w", path, err)
	}
	return r, nil
}

// observe records the live members and forgets those that left; it writes
// the file when the set changed or a time went stale.
func (r *roster) observe(members []gossip.Member, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for _, m := range members {
		switch m.State {
		case gossip.StateAlive:
			if last, ok := r.seen[m.ID]; !ok || now.Unix()-last > int64(rosterRefresh/time.Second) {
				r.seen[m.ID] = now.Unix()
				changed = true
			}
		case gossip.StateLeft:
			if _, ok := r.seen[m.ID]; ok {
				delete(r.seen, m.ID)
				changed = true
			}
		}
	}
	for id, last := range r.seen {
		if now.Unix()-last > int64(rosterMemory/time.Second) {
			delete(r.seen, id)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	b, _ := json.Marshal(r.seen)
	return wgkey.WriteFileAtomic(r.path, b, 0o600)
}

// known returns the ids of the nodes seen within rosterMemory, with the
// ids in also, sorted.
func (r *roster) known(now time.Time, also ...string) []string {
	r.mu.Lock()
	set := map[string]bool{}
	for id, last := range r.seen {
		if now.Unix()-last <= int64(rosterMemory/time.Second) {
			set[id] = true
		}
	}
	r.mu.Unlock()
	for _, id := range also {
		set[id] = true
	}
	out := make([]string, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}
