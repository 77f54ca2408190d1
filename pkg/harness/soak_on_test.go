//go:build soak

package harness

// soakTag reports whether the tests run with the soak tag (task soak).
const soakTag = true
