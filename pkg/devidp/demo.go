package devidp

import (
	_ "embed"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed testdata/users.yaml
var demoUsersYAML string

// DemoUsers returns the demo users of testdata/users.yaml (alice, bob,
// carol, dave, erin; see that file), for the local demo and the harness.
func DemoUsers() []User {
	var f usersFile
	dec := yaml.NewDecoder(strings.NewReader(demoUsersYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		panic(fmt.Sprintf("devidp: embedded demo users: %v", err)) // covered by tests
	}
	return f.Users
}
