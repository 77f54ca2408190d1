package authority

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/postern/postern/pkg/wgkey"
)

// UsedRetention is how long past its expiry a used token id is kept. It
// exceeds MaxSkew, so no token can still verify once its id is pruned.
const UsedRetention = 2 * MaxSkew

// maxUsedEntries bounds the set, so that a flood of gossip cannot exhaust
// memory; enrolment tokens live at most MaxEnrollTTL.
const maxUsedEntries = 1 << 20

// UsedToken is one burnt enrolment token id and when the token expires.
type UsedToken struct {
	// ID is the token's jti.
	ID string `json:"jti"`
	// Expires is the token's exp; the id is kept until Expires plus
	// UsedRetention.
	Expires time.Time `json:"exp"`
	// RID, when known, names the redemption that burnt the token (a hash
	// of the token and the enrolled key): a retry of that same redemption
	// (the same enrollee, whose first answer was lost) is accepted again.
	// Empty when not known (a lone node, or an older node's record).
	RID string `json:"rid,omitempty"`
}

// maxRIDLen bounds a redemption id (hex of 16 bytes in practice).
const maxRIDLen = 64

// usedFile is the on-disk form of a UsedTokens set.
type usedFile struct {
	Version int         `json:"version"`
	Tokens  []UsedToken `json:"tokens"`
	// Grants are this node's votes in mesh-wide redemptions.
	Grants []grant `json:"grants,omitempty"`
	// AbstainBefore is set when the record was lost: the node does not
	// vote for tokens issued before then (it forgot its votes for them).
	AbstainBefore time.Time `json:"abstain_before,omitzero"`
}

// grant is one vote: this node granted token ID to redemption RID.
type grant struct {
	ID      string    `json:"jti"`
	RID     string    `json:"rid"`
	Expires time.Time `json:"exp"`
}

// UsedTokens is the set of enrolment token ids already used, persisted to a
// file so that a restart does not allow reuse. It is safe for concurrent
// use.
type UsedTokens struct {
	path string
	now  func() time.Time

	mu            sync.Mutex           // guards the following
	ids           map[string]time.Time // jti → exp
	rids          map[string]string    // jti → the redemption that burnt it, when known
	grants        map[string]grant     // jti → the redemption this node voted for
	unrestored    bool                 // the file was lost: MarkUsed and Grant refuse until Restore
	abstainBefore time.Time            // Grant abstains for tokens issued before
}

// ErrAbstain means this node lost its votes for tokens issued before its
// record was lost, so it does not vote on them: a vote could contradict
// one it forgot.
var ErrAbstain = errors.New("this node lost its votes for tokens issued before its record was lost")

// ErrUsedUnrestored means the set of used tokens was lost (its file is
// missing although the node ran before) and has not been restored from the
// other mesh nodes yet: burning a token now could accept one that was used
// before, so MarkUsed refuses.
var ErrUsedUnrestored = errors.New("the record of used enrolment tokens was lost and is not restored yet")

// OpenUsedTokens loads the set from path. A file that exists but cannot be
// read or parsed is an error: starting empty would allow reuse. When the
// file does not exist, an empty set is started and written at once, so
// that a later loss is noticed; but when lost is true (the caller knows the
// node ran before, so the file should exist) the set starts unrestored:
// MarkUsed fails with ErrUsedUnrestored until Restore. now is the clock;
// nil means time.Now.
func OpenUsedTokens(path string, now func() time.Time, lost bool) (*UsedTokens, error) {
	if path == "" {
		return nil, fmt.Errorf("authority: open used tokens: empty path: %w", ErrInvalidArgument)
	}
	if now == nil {
		now = time.Now
	}
	u := &UsedTokens{path: path, now: now, ids: map[string]time.Time{}, rids: map[string]string{}, grants: map[string]grant{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if lost {
			u.unrestored, u.abstainBefore = true, now()
			return u, nil
		}
		if err := u.saveLocked(); err != nil {
			return nil, fmt.Errorf("authority: open used tokens: %w", err)
		}
		return u, nil
	}
	if err != nil {
		return nil, fmt.Errorf("authority: open used tokens: %w", err)
	}
	var f usedFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("authority: open used tokens %s: corrupt file, refusing to start with an empty set: %w", path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("authority: open used tokens %s: version %d, want 1", path, f.Version)
	}
	for _, t := range f.Tokens {
		u.ids[t.ID] = t.Expires
		if t.RID != "" {
			u.rids[t.ID] = t.RID
		}
	}
	for _, g := range f.Grants {
		u.grants[g.ID] = g
	}
	u.abstainBefore = f.AbstainBefore
	u.pruneLocked()
	return u, nil
}

// MarkUsed burns jti, whose token expires at exp. It reports first = true
// only to the one caller that burnt it, after the set is durably written;
// on a write error the id is not burnt and first is false.
func (u *UsedTokens) MarkUsed(jti string, exp time.Time) (first bool, err error) {
	if jti == "" {
		return false, fmt.Errorf("authority: mark token used: empty id: %w", ErrInvalidArgument)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.pruneLocked()
	if _, ok := u.ids[jti]; ok {
		return false, nil
	}
	if u.unrestored {
		return false, fmt.Errorf("authority: mark token used: %w", ErrUsedUnrestored)
	}
	if len(u.ids) >= maxUsedEntries {
		return false, fmt.Errorf("authority: mark token used: %d ids held, the limit", len(u.ids))
	}
	u.ids[jti] = exp
	if err := u.saveLocked(); err != nil {
		delete(u.ids, jti)
		return false, fmt.Errorf("authority: mark token used: %w", err)
	}
	return true, nil
}

// Has reports whether jti has been used.
func (u *UsedTokens) Has(jti string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.ids[jti]
	return ok
}

// RedeemedBy reports whether jti has been used and, if known, the
// redemption that burnt it ("" when not known).
func (u *UsedTokens) RedeemedBy(jti string) (rid string, used bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, used = u.ids[jti]
	return u.rids[jti], used
}

// Restored reports whether the set may burn tokens: it was not lost, or
// Restore was called.
func (u *UsedTokens) Restored() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return !u.unrestored
}

// Restore ends the unrestored state of a lost set, once the caller has
// merged the ids held by enough other mesh nodes, and writes the file. The
// node still abstains from voting on tokens issued before the loss.
func (u *UsedTokens) Restore() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.unrestored {
		return nil
	}
	if err := u.saveLocked(); err != nil {
		return fmt.Errorf("authority: restore used tokens: %w", err)
	}
	u.unrestored = false
	return nil
}

// List returns the ids held, oldest expiry first, for gossip.
func (u *UsedTokens) List() []UsedToken {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.pruneLocked()
	out := make([]UsedToken, 0, len(u.ids))
	for id, exp := range u.ids {
		out = append(out, UsedToken{ID: id, Expires: exp, RID: u.rids[id]})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Expires.Equal(out[j].Expires) {
			return out[i].Expires.Before(out[j].Expires)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Merge adds ids learnt from other mesh nodes (or the winning redemption
// of an id held without one) and persists the set when it changed. Ids
// already expired past retention, empty ids, ids longer than 64 bytes and
// redemption ids longer than 64 bytes are ignored. A known redemption is
// never replaced. On a write error the set is left unchanged.
func (u *UsedTokens) Merge(ids []UsedToken) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.pruneLocked()
	cutoff := u.now().Add(-UsedRetention)
	var added, named []string
	for _, t := range ids {
		if t.ID == "" || len(t.ID) > 64 || len(t.RID) > maxRIDLen || t.Expires.Before(cutoff) {
			continue
		}
		if _, ok := u.ids[t.ID]; !ok {
			if len(u.ids) >= maxUsedEntries {
				continue
			}
			u.ids[t.ID] = t.Expires
			added = append(added, t.ID)
		}
		if _, ok := u.rids[t.ID]; !ok && t.RID != "" {
			u.rids[t.ID] = t.RID
			named = append(named, t.ID)
		}
	}
	if len(added)+len(named) == 0 || u.unrestored {
		return nil // an unrestored set is written by Restore
	}
	if err := u.saveLocked(); err != nil {
		for _, id := range added {
			delete(u.ids, id)
		}
		for _, id := range named {
			delete(u.rids, id)
		}
		return fmt.Errorf("authority: merge used tokens: %w", err)
	}
	return nil
}

// Grant records this node's vote for redemption rid of token jti, issued
// at iat and expiring at exp, durably. It reports granted = true when the
// node had not voted for another redemption of jti (a repeated request of
// the same rid is granted again). It fails with ErrUsedUnrestored while a
// lost record is unrestored, and with ErrAbstain for a token issued before
// the record was lost.
func (u *UsedTokens) Grant(jti, rid string, iat, exp time.Time) (granted bool, err error) {
	if jti == "" || rid == "" {
		return false, fmt.Errorf("authority: grant token: empty id: %w", ErrInvalidArgument)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.pruneLocked()
	switch {
	case u.unrestored:
		return false, fmt.Errorf("authority: grant token: %w", ErrUsedUnrestored)
	case iat.Before(u.abstainBefore):
		return false, fmt.Errorf("authority: grant token: %w", ErrAbstain)
	}
	if g, ok := u.grants[jti]; ok {
		return g.RID == rid, nil
	}
	if len(u.grants) >= maxUsedEntries {
		return false, fmt.Errorf("authority: grant token: %d grants held, the limit", len(u.grants))
	}
	u.grants[jti] = grant{ID: jti, RID: rid, Expires: exp}
	if err := u.saveLocked(); err != nil {
		delete(u.grants, jti)
		return false, fmt.Errorf("authority: grant token: %w", err)
	}
	return true, nil
}

// pruneLocked drops ids and grants whose tokens expired more than
// UsedRetention ago, and the abstention once every token it covers has
// expired. It does not write; the next write persists the pruning.
func (u *UsedTokens) pruneLocked() {
	now := u.now()
	cutoff := now.Add(-UsedRetention)
	for id, exp := range u.ids {
		if exp.Before(cutoff) {
			delete(u.ids, id)
			delete(u.rids, id)
		}
	}
	for id, g := range u.grants {
		if g.Expires.Before(cutoff) {
			delete(u.grants, id)
		}
	}
	if !u.abstainBefore.IsZero() && u.abstainBefore.Add(MaxEnrollTTL+UsedRetention).Before(now) {
		u.abstainBefore = time.Time{}
	}
}

// saveLocked writes the whole set atomically, mode 0600.
func (u *UsedTokens) saveLocked() error {
	f := usedFile{Version: 1, Tokens: make([]UsedToken, 0, len(u.ids)), AbstainBefore: u.abstainBefore}
	for id, exp := range u.ids {
		f.Tokens = append(f.Tokens, UsedToken{ID: id, Expires: exp, RID: u.rids[id]})
	}
	for _, g := range u.grants {
		f.Grants = append(f.Grants, g)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return wgkey.WriteFileAtomic(u.path, b, 0o600)
}
