package connector

import (
	"testing"
	"time"

	"github.com/postern/postern/pkg/enroll"
)

// TestNextSlotWait: after another connector's slot the next ask falls
// early in the next slot; a retry after an error comes within slotRetry
// and its spread; a slot without a start (or ending in the past) never
// makes the wait unbounded.
func TestNextSlotWait(t *testing.T) {
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	need := 3 * time.Minute
	tests := []struct {
		name     string
		slot     enroll.UpdateSlotResponse
		min, max time.Duration
	}{
		{"held by another", enroll.UpdateSlotResponse{Start: now.Add(-5 * time.Minute), Until: now.Add(10 * time.Minute)},
			10 * time.Minute, 10*time.Minute + 15*time.Minute/2},
		{"retry after an error", enroll.UpdateSlotResponse{Start: now, Until: now.Add(slotRetry)}, slotRetry, slotRetry + time.Millisecond},
		{"no start", enroll.UpdateSlotResponse{Until: now.Add(time.Minute)}, time.Minute, time.Minute + enroll.UpdateSlotLength/2},
		{"ended", enroll.UpdateSlotResponse{Start: now.Add(-20 * time.Minute), Until: now.Add(-5 * time.Minute)}, 0, enroll.UpdateSlotLength / 2},
	}
	for _, tt := range tests {
		for range 50 {
			if got := nextSlotWait(tt.slot, now, need); got < tt.min || got > tt.max {
				t.Fatalf("%s: waits %v, want within [%v, %v]", tt.name, got, tt.min, tt.max)
			}
		}
	}
}
