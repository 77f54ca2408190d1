//go:build !race

package harness

// raceDetector reports whether the race detector is on; see race.go.
const raceDetector = false
