//go:build !long

package meshtest

// raceRounds is how many rounds TestTokenUsedOnceAcrossTheMesh runs: a few
// in the default run, 100 with -tags long.
const raceRounds = 10
