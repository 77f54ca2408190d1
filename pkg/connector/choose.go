package connector

import (
	"cmp"
	"slices"
	"time"
)

// unreachable is the cost of a mesh node that did not answer a measurement.
const unreachable = time.Duration(1<<63 - 1)

// Hysteresis: an attached node is replaced only by a candidate faster by
// more than both of these.
const (
	switchRatio  = 0.8 // the candidate's RTT must be below 80% of the current's
	switchMargin = 5 * time.Millisecond
)

// choose returns the mesh node URLs to be attached to, sorted: the k
// reachable candidates with the lowest RTT, except that a node in current
// stays while no candidate outside the choice beats it by more than 20%
// and 5 ms. rtts holds every candidate; a missing entry or unreachable
// means the node cannot be chosen. Fewer than k come back when fewer are
// reachable.
func choose(current []string, rtts map[string]time.Duration, k int) []string {
	reach := func(u string) bool { d, ok := rtts[u]; return ok && d != unreachable }
	byRTT := func(a, b string) int { return cmp.Or(cmp.Compare(rtts[a], rtts[b]), cmp.Compare(a, b)) }
	var cands []string
	for u := range rtts {
		if reach(u) {
			cands = append(cands, u)
		}
	}
	slices.SortFunc(cands, byRTT)
	var out []string
	for _, u := range current {
		if reach(u) && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, byRTT)
	out = out[:min(len(out), k)]
	for _, u := range cands {
		if len(out) < k && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	for {
		worst := -1
		for i, u := range out {
			if worst < 0 || rtts[u] > rtts[out[worst]] {
				worst = i
			}
		}
		best := slices.IndexFunc(cands, func(u string) bool { return !slices.Contains(out, u) })
		if worst < 0 || best < 0 || !faster(rtts[cands[best]], rtts[out[worst]]) {
			break
		}
		out[worst] = cands[best]
	}
	slices.Sort(out)
	return out
}

// faster reports whether a candidate with RTT cand is worth leaving a node
// with RTT cur for.
func faster(cand, cur time.Duration) bool {
	return cur-cand > switchMargin && float64(cand) < switchRatio*float64(cur)
}
