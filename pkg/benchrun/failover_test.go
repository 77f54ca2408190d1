package benchrun

import (
	"testing"
	"time"
)

func TestTimelineFigures(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	steady := func() []event { // 1 ms requests from 0 to 999 ms
		var evs []event
		for i := 0; i < 1000; i++ {
			evs = append(evs, event{start: at(i), end: at(i + 1), ok: true})
		}
		return evs
	}
	kill := at(1000)
	cases := []struct {
		name            string
		after           []event
		noKill          bool
		failed, stalled int64
		recovery        time.Duration
	}{
		{"clean", []event{{at(1001), at(1002), true}}, false, 0, 0, 0},
		{"one stall", []event{{at(999), at(3500), true}, {at(1001), at(1002), true}, {at(3600), at(3601), true}}, false, 0, 1, 2500 * time.Millisecond},
		{"failures then back", []event{{at(1001), at(1200), false}, {at(1200), at(1400), false}, {at(1400), at(1401), true}}, false, 2, 0, 400 * time.Millisecond},
		{"never back", []event{{at(1001), at(1002), true}, {at(1002), at(1300), false}}, false, 1, 0, -1},
		{"no kill", nil, true, 0, 0, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tl := &timeline{events: append(steady(), tc.after...)}
			if !tc.noKill {
				tl.markKill(kill)
			}
			failed, stalled, rec := tl.figures()
			if failed != tc.failed || stalled != tc.stalled || rec != tc.recovery {
				t.Errorf("got failed %d stalled %d recovery %v, want %d %d %v", failed, stalled, rec, tc.failed, tc.stalled, tc.recovery)
			}
		})
	}
}
