//go:build long

package meshtest

// raceRounds is how many rounds TestTokenUsedOnceAcrossTheMesh runs with
// -tags long.
const raceRounds = 100
