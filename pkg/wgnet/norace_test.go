//go:build !race

package wgnet

// raceDetector reports whether the tests run under the race detector.
const raceDetector = false
