//go:build race

package harness

// raceDetector reports whether the race detector is on. It makes the whole
// system several times slower, so the harness stretches the liveness
// timings (stretch) and the soak tests send fewer requests: a race run
// looks for data races, and a probe that misses its deadline because the
// detector slowed everything down is not one.
const raceDetector = true
