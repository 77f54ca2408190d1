package policy

import (
	"errors"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		in   string
		ci   bool
		want string // "" means ErrBadPath
	}{
		// Spellings of /admin that must all meet the rule on /admin.
		{"/admin", false, "/admin"},
		{"/Admin", true, "/admin"},
		{"/ADMIN/users", true, "/admin/users"},
		{"/Admin", false, "/Admin"}, // case-sensitive app: a different path for the backend too
		{"//admin", false, "/admin"},
		{"///admin//x", false, "/admin/x"},
		{"/./admin", false, "/admin"},
		{"/admin/.", false, "/admin/"},
		{"/%61dmin", false, "/admin"},
		{"/%41dmin", true, "/admin"},
		{"/%2e/admin", false, "/admin"},
		{"/public/%2e%2e/admin", false, "/admin"},
		{"/public/%2E%2E/admin", false, "/admin"},
		{"/public/../admin", false, "/admin"},
		{"/public/..;/admin", false, "/admin"},
		{"/admin;x", false, "/admin"},
		{"/admin;jsessionid=1/x", false, "/admin/x"},
		{"/admin?x=1", false, "/admin"},
		{"/admin/?x=//evil", false, "/admin/"},
		{"/a/b/../../admin", false, "/admin"},
		{"/caf%c3%a9", false, "/caf%C3%A9"},
		{"/x%20y", false, "/x%20y"},
		{"/", false, "/"},
		{"/.", false, "/"},
		{"/admin/", false, "/admin/"},
		{"/%7Euser", false, "/~user"},
		// Refused.
		{"/admin%2f", false, ""},
		{"/admin%2F", false, ""},
		{"/admin%2fx", false, ""},
		{"/admin%5c", false, ""},
		{"/%5cadmin", false, ""},
		{"/admin#", false, ""},
		{"/admin#frag", false, ""},
		{"/x?y#z", false, ""},
		{"http://smartmoney.localhost/admin", false, ""},
		{"https://evil.com/admin", false, ""},
		{"smartmoney.localhost:443", false, ""},
		{"*", false, ""},
		{"", false, ""},
		{"admin", false, ""},
		{"/..", false, ""},
		{"/../admin", false, ""},
		{"/public/../../admin", false, ""},
		{"/%2e%2e/admin", false, ""},
		{"/admin\\", false, ""},
		{"/\\admin", false, ""},
		{"/adm in", false, ""},
		{"/admin\t", false, ""},
		{"/admin\n", false, ""},
		{"/admin\r\nX: y", false, ""},
		{"/admin%00", false, ""},
		{"/admin%0a", false, ""},
		{"/admin%7f", false, ""},
		{"/%2561dmin", false, ""},
		{"/admin%", false, ""},
		{"/admin%6", false, ""},
		{"/admin%zz", false, ""},
		{"/caf\u00e9", false, ""},
		{"/admin\x7f", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Normalize(tt.in, tt.ci)
			if tt.want == "" {
				if !errors.Is(err, ErrBadPath) {
					t.Errorf("got %q, %v, want %v", got, err, ErrBadPath)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

func TestNormalizeCleanPathDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Normalize("/app/page/x.css", true); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("got %v allocations, want 0", allocs)
	}
}
