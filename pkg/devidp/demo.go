package devidp

import (
	_ "embed"
	"fmt"
)

//go:embed testdata/users.yaml
var demoUsersYAML string

// DemoUsers returns the demo users of testdata/users.yaml (alice, bob,
// carol, dave, erin; see that file), for the local demo and the harness.
func DemoUsers() []User {
	users, err := parseUsers([]byte(demoUsersYAML))
	if err != nil {
		panic(fmt.Sprintf("devidp: embedded demo users: %v", err)) // covered by tests
	}
	return users
}
