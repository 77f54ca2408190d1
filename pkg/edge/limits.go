package edge

import (
	"net/http"
	"strconv"

	"golang.org/x/time/rate"

	"github.com/postern/postern/pkg/errpage"
	"github.com/postern/postern/pkg/iplimit"
)

// Defaults of Limits.
const (
	// DefaultUnauthRate is the sustained rate of answers without a
	// verified identity that one client may get.
	DefaultUnauthRate rate.Limit = 10
	// DefaultUnauthBurst is the burst of such answers: enough for a
	// company's users behind one NAT address signing in together.
	DefaultUnauthBurst = 100
)

// Limits bounds what one client (an IPv4 address or an IPv6 /64) may cost
// the edge before it has proved who it is. Authenticated requests and
// requests relayed by other mesh nodes never count.
type Limits struct {
	// UnauthRate is the sustained rate per second of answers given
	// without a verified identity — sign-in redirects, 401, 404 and the
	// edge's own 400 refusals; past it the client gets 429 with
	// Retry-After. Zero means DefaultUnauthRate; rate.Inf means no limit.
	UnauthRate rate.Limit
	// UnauthBurst is the burst of such answers; zero means
	// DefaultUnauthBurst.
	UnauthBurst int
	// MaxClients bounds the clients whose budget is tracked at once; zero
	// means iplimit.DefaultMaxEntries. Past it the least recently seen are
	// forgotten, so memory stays bounded however many addresses a client
	// uses.
	MaxClients int
}

func (l Limits) limiter() *iplimit.Limiter {
	r, b := l.UnauthRate, l.UnauthBurst
	if r == 0 {
		r = DefaultUnauthRate
	}
	if b == 0 {
		b = DefaultUnauthBurst
	}
	return iplimit.NewLimiter(r, b, l.MaxClients)
}

// writeUnauth writes p, an answer to a request without a verified
// identity, or 429 with Retry-After when the client is past its budget.
func (h *Handler) writeUnauth(w http.ResponseWriter, r *http.Request, st *reqState, p errpage.Page) {
	if h.limitedUnauth(w, r, st) {
		return
	}
	errpage.Write(w, r, p)
}

// limitedUnauth takes one unauthenticated answer from the client's budget;
// when it is spent, it answers 429 itself and returns true.
func (h *Handler) limitedUnauth(w http.ResponseWriter, r *http.Request, st *reqState) bool {
	ok, wait := h.unauth.Allow(clientAddr(st.clientIP), h.cfg.Now())
	if ok {
		return false
	}
	if st.errReason == "" {
		st.errReason = "too many unauthenticated requests from this address"
	} else {
		st.errReason += " (answered 429: too many unauthenticated requests from this address)"
	}
	secs := iplimit.RetryAfterSeconds(wait)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	errpage.Write(w, r, errpage.Page{Status: http.StatusTooManyRequests, Title: "Too many requests",
		Reason: "Too many requests from your address without signing in; try again in " + strconv.Itoa(secs) + " s.", RequestID: st.rid})
	return true
}
