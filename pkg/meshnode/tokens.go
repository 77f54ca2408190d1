package meshnode

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/gossip"
	"github.com/postern/postern/pkg/tunnelhttp"
	"github.com/postern/postern/pkg/wgkey"
)

// A one-time enrolment token is accepted at most once across the mesh,
// also when it is presented at several nodes at once and during
// partitions:
//
//   - Each token has an owner: the live member (this node included) that
//     ranks highest for the token's id by rendezvous hashing. Every node
//     forwards a redemption to the owner over the mesh tunnel, so
//     concurrent redemptions meet at one node, which serialises them.
//   - The owner runs a vote for its redemption (a random id): it votes
//     itself and asks every other live member. Each node votes for at most
//     one redemption per token, durably, and says "used" for a token it
//     knows was redeemed. The owner accepts once a majority of the mesh
//     nodes it knows (its roster, which survives restarts) voted for it.
//     Two majorities share a node, which votes only once, so no two
//     redemptions are ever both accepted, whatever the partition or the
//     timing. A redemption that got no majority fails with 503 and the
//     votes it collected stay: the same enrolment may retry, another key
//     may not.
//   - A node that sees no majority refuses at once with 503. A node whose
//     record was lost refuses to vote until it has merged the records of
//     enough other nodes, and never votes on tokens issued before the
//     loss (it forgot its votes on them).
//
// An accepted token's id spreads by the gossip at once, so every node
// refuses it locally; votes never spread, so a vote in flight cannot be
// mistaken for a finished redemption.

// tokensPath is the mesh-internal endpoint, served on the tunnel listener
// to mesh nodes only.
const tokensPath = enroll.PathPrefix + "mesh/tokens"

// Token operations and answers.
const (
	opRedeem  = "redeem"  // to the owner: redeem for the mesh
	opReserve = "reserve" // from the owner: burn in your store

	resFirst       = "first"       // burnt now: the id was new
	resUsed        = "used"        // the id was used before
	resUnavailable = "unavailable" // cannot decide now
)

// Timeouts of the mesh-internal token calls.
const (
	forwardTimeout = 5 * time.Second
	reserveTimeout = 2 * time.Second
)

type tokenRequest struct {
	Op       string    `json:"op"`
	ID       string    `json:"jti"`
	RID      string    `json:"rid,omitempty"` // the redemption voted on (reserve)
	IssuedAt time.Time `json:"iat"`
	Expires  time.Time `json:"exp"`
}

type tokenAnswer struct {
	Result string `json:"result"`
	Reason string `json:"reason,omitempty"`
}

// redeemer implements enroll.Redeemer for a node in a cluster.
type redeemer struct {
	m *mesh

	mu sync.Mutex // serialises redemptions owned here
}

var _ enroll.Redeemer = (*redeemer)(nil)

// Redeem burns t for the whole mesh, for the enrolment of key.
func (r *redeemer) Redeem(ctx context.Context, t authority.TokenInfo, key wgkey.Public) (bool, error) {
	m := r.m
	rid := redemptionID(t.ID, key)
	if won, used := m.redeemed(t.ID, rid); used {
		return won, nil
	}
	live, known := m.electorate()
	if 2*len(live) <= len(known) {
		return false, fmt.Errorf("%w: this node sees %d of the %d mesh nodes it knows, no majority (a partition?)", enroll.ErrRedeemUnavailable, len(live), len(known))
	}
	owner := ownerOf(t.ID, live)
	if owner.ID == m.n.cfg.ID {
		return r.own(ctx, t, rid)
	}
	ans, err := m.callTokens(ctx, owner, tokenRequest{Op: opRedeem, ID: t.ID, RID: rid, IssuedAt: t.IssuedAt, Expires: t.Expires}, forwardTimeout)
	if err != nil {
		return false, fmt.Errorf("%w: the token's owner %s did not answer: %v", enroll.ErrRedeemUnavailable, owner.ID, err)
	}
	switch ans.Result {
	case resFirst:
		// The owner recorded the redemption; this copy only answers a
		// second attempt here sooner, so a failure to keep it is logged.
		if err := m.n.used.Merge([]authority.UsedToken{{ID: t.ID, Expires: t.Expires, RID: rid}}); err != nil {
			m.n.logger.Warn("used_token_not_recorded", "token_id", t.ID, "error", err)
		}
		return true, nil
	case resUsed:
		return false, nil
	}
	return false, fmt.Errorf("%w: the token's owner %s: %s", enroll.ErrRedeemUnavailable, owner.ID, ans.Reason)
}

// redeemed reports whether token id is known used and, if so, whether
// redemption rid is the one that burnt it: a retry of the winning
// redemption (the same enrollee, whose first answer was lost, e.g. to a
// timeout between nodes) is accepted again — its credential is sealed to
// the same key.
func (m *mesh) redeemed(id, rid string) (won, used bool) {
	winner, used := m.n.used.RedeemedBy(id)
	return used && rid != "" && winner == rid, used
}

// redemptionID names the redemption of token jti for key: a retry for
// the same key after a failed vote is the same redemption, and the votes
// it already got count again; another key's is another redemption.
func redemptionID(jti string, key wgkey.Public) string {
	sum := sha256.Sum256(append([]byte(jti+"\x00"), key[:]...))
	return hex.EncodeToString(sum[:16])
}

// own redeems t as its owner: a vote among the live members on redemption
// rid, accepted with a majority of the known nodes.
func (r *redeemer) own(ctx context.Context, t authority.TokenInfo, rid string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.m
	if won, used := m.redeemed(t.ID, rid); used {
		return won, nil
	}
	req := tokenRequest{Op: opReserve, ID: t.ID, RID: rid, IssuedAt: t.IssuedAt, Expires: t.Expires}
	mine := m.vote(req)
	if mine.Result == resUsed {
		return false, nil
	}
	live, known := m.electorate()
	need := len(known)/2 + 1
	yes := 0
	if mine.Result == resFirst {
		yes = 1
	}
	votes := make(chan tokenAnswer, len(live))
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: the calls still out end at once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	asked := 0
	for _, mb := range live {
		if mb.ID == m.n.cfg.ID {
			continue
		}
		asked++
		wg.Go(func() {
			ans, err := m.callTokens(ctx, mb, req, reserveTimeout)
			if err != nil {
				if ctx.Err() == nil {
					m.n.logger.Warn("token_vote_failed", "peer_node", mb.ID, "error", err)
				}
				ans = tokenAnswer{Result: resUnavailable, Reason: err.Error()}
			}
			votes <- ans
		})
	}
	// Once a majority voted for this redemption no other can win: stop
	// waiting for the slow.
	for i := 0; i < asked && yes < need; i++ {
		switch v := <-votes; v.Result {
		case resUsed:
			m.n.logger.Warn("token_used_elsewhere", "token_id", t.ID)
			return false, nil
		case resFirst:
			yes++
		}
	}
	if yes < need {
		return false, fmt.Errorf("%w: only %d of the %d mesh nodes known voted for this redemption", enroll.ErrRedeemUnavailable, yes, len(known))
	}
	used := authority.UsedToken{ID: t.ID, Expires: t.Expires, RID: rid}
	if err := m.n.used.Merge([]authority.UsedToken{used}); err != nil {
		m.n.logger.Warn("used_token_not_recorded", "token_id", t.ID, "error", err)
	}
	m.cluster.TokenUsed(used)
	return true, nil
}

// vote is this node's vote on a redemption: used when the token is known
// redeemed or this node voted for another redemption of it, first when it
// votes for this one, unavailable when it cannot vote.
func (m *mesh) vote(req tokenRequest) tokenAnswer {
	if won, used := m.redeemed(req.ID, req.RID); used {
		if won {
			return tokenAnswer{Result: resFirst}
		}
		return tokenAnswer{Result: resUsed}
	}
	granted, err := m.n.used.Grant(req.ID, req.RID, req.IssuedAt, req.Expires)
	switch {
	case err != nil:
		return tokenAnswer{Result: resUnavailable, Reason: err.Error()}
	case granted:
		return tokenAnswer{Result: resFirst}
	}
	return tokenAnswer{Result: resUsed}
}

// electorate returns the live members (this node included) and the ids of
// every node this node knows: the roster and the live members.
func (m *mesh) electorate() (live []gossip.Member, known []string) {
	now := m.n.cfg.Now()
	var ids []string
	for _, mb := range m.cluster.Members() {
		if mb.State == gossip.StateAlive && !mb.WGKey.IsZero() {
			live = append(live, mb)
			ids = append(ids, mb.ID)
		}
	}
	return live, m.roster.known(now, ids...)
}

// ownerOf returns the member that ranks highest for id by rendezvous
// hashing.
func ownerOf(id string, members []gossip.Member) gossip.Member {
	var best gossip.Member
	var bestScore uint64
	for i, mb := range members {
		sum := sha256.Sum256([]byte(id + "\x00" + mb.ID))
		if score := binary.BigEndian.Uint64(sum[:8]); i == 0 || score > bestScore || (score == bestScore && mb.ID < best.ID) {
			best, bestScore = mb, score
		}
	}
	return best
}

// callTokens sends req to mb's token endpoint over the mesh tunnel.
func (m *mesh) callTokens(ctx context.Context, mb gossip.Member, req tokenRequest, timeout time.Duration) (tokenAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, _ := json.Marshal(req)
	url := "http://" + netip.AddrPortFrom(mb.WGKey.Addr(), tunnelhttp.Port).String() + tokensPath
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return tokenAnswer{}, err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := m.tokenClient.Do(hr)
	if err != nil {
		return tokenAnswer{}, err
	}
	defer resp.Body.Close()
	var ans tokenAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&ans); err != nil {
		return tokenAnswer{}, fmt.Errorf("answer of %s: HTTP %d: %w", mb.ID, resp.StatusCode, err)
	}
	return ans, nil
}

// tokensHandler serves tokensPath to the other mesh nodes: redeem (as the
// token's owner) and reserve (burn for an owner).
func (m *mesh) tokensHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req tokenRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
		if r.Method != http.MethodPost || dec.Decode(&req) != nil || req.ID == "" || len(req.ID) > 64 {
			http.Error(w, "bad token request", http.StatusBadRequest)
			return
		}
		ans := m.answerTokens(r.Context(), req)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(ans)
	})
}

func (m *mesh) answerTokens(ctx context.Context, req tokenRequest) tokenAnswer {
	switch req.Op {
	case opReserve:
		if req.RID == "" {
			return tokenAnswer{Result: resUnavailable, Reason: "no redemption id"}
		}
		return m.vote(req)
	case opRedeem:
		live, known := m.electorate()
		if 2*len(live) <= len(known) {
			return tokenAnswer{Result: resUnavailable, Reason: fmt.Sprintf("the owner sees %d of %d mesh nodes, no majority", len(live), len(known))}
		}
		if owner := ownerOf(req.ID, live); owner.ID != m.n.cfg.ID {
			return tokenAnswer{Result: resUnavailable, Reason: "the mesh membership is changing (another node owns this token now); retry"}
		}
		if req.RID == "" {
			return tokenAnswer{Result: resUnavailable, Reason: "no redemption id"}
		}
		first, err := m.redeem.own(ctx, authority.TokenInfo{ID: req.ID, IssuedAt: req.IssuedAt, Expires: req.Expires}, req.RID)
		switch {
		case err != nil:
			return tokenAnswer{Result: resUnavailable, Reason: err.Error()}
		case first:
			return tokenAnswer{Result: resFirst}
		}
		return tokenAnswer{Result: resUsed}
	}
	return tokenAnswer{Result: resUnavailable, Reason: "unknown operation"}
}

// restoreUsed ends the unrestored state of a lost used-token record once
// the full states of enough other nodes were merged: as many as make,
// with any majority of the known nodes, a shared node (a majority of the
// known nodes, at most all the others). It is called after each merge.
func (m *mesh) restoreUsed() {
	if m.n.used.Restored() {
		return
	}
	_, known := m.electorate()
	m.mu.Lock()
	merged := 0
	for _, id := range known {
		if m.statesFrom[id] {
			merged++
		}
	}
	m.mu.Unlock()
	need := min(len(known)/2+1, len(known)-1) // 0 when it knows no other node
	if merged < need {
		return
	}
	if err := m.n.used.Restore(); err != nil {
		m.n.logger.Error("used_tokens_restore_failed", "error", err)
		return
	}
	m.n.logger.Warn("used_tokens_restored", "from_nodes", merged, "known_nodes", len(known),
		"reason", "the record of used enrolment tokens was lost; it is rebuilt from the other mesh nodes")
}

// noteState records that a node's full state was merged.
func (m *mesh) noteState(node string) {
	m.mu.Lock()
	m.statesFrom[node] = true
	m.mu.Unlock()
	m.poke()
}
