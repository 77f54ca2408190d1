package edge

import (
	"testing"

	"github.com/postern/postern/pkg/session"
)

// TestShownUser checks how a 403 page names the user: a user name, else an
// e-mail address, else a display name, and the principal id only when the
// provider gave none of them.
func TestShownUser(t *testing.T) {
	for _, tc := range []struct {
		id   session.Identity
		want string
	}{
		{session.Identity{Subject: "t/o", Username: "alice@corp", Email: "a@x", Name: "Alice"}, "alice@corp"},
		{session.Identity{Subject: "t/o", Email: "a@x", Name: "Alice"}, "a@x"},
		{session.Identity{Subject: "t/o", Name: "Alice"}, "Alice"},
		{session.Identity{Subject: "t/o"}, "t/o"},
	} {
		if got := shownUser(&tc.id); got != tc.want {
			t.Errorf("shownUser(%+v) = %q, want %q", tc.id, got, tc.want)
		}
	}
}
