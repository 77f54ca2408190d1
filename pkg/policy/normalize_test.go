package policy

import (
	"errors"
	"slices"
	"strconv"
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
		{"/%61dmin", false, "/admin"},
		{"/%41dmin", true, "/admin"},
		{"/admin;x", false, "/admin"},
		{"/admin%3Bx", false, "/admin"}, // as the literal ";"
		{"/admin%3bx/y", false, "/admin/y"},
		{"/admin;jsessionid=1/x", false, "/admin/x"},
		{"/admin?x=1", false, "/admin"},
		{"/admin/?x=//evil", false, "/admin/"},
		{"/caf%c3%a9", false, "/caf\u00e9"},
		{"/x%20y", false, "/x y"},
		{"/", false, "/"},
		{"/admin/", false, "/admin/"},
		{"/%7Euser", false, "/~user"},
		{"/.well-known/x", false, "/.well-known/x"},
		{"/admin.", false, "/admin."}, // case-sensitive apps: Go and Unix read it as is
		{"/file.txt", true, "/file.txt"},
		{"/v1.2/x", true, "/v1.2/x"},
		{"/~user", true, "/~user"},
		{"/CAF%C3%89", true, "/caf\u00e9"},
		{"/%CF%82", true, "/\u03c3"}, // final sigma meets sigma, as NTFS compares
		{"/%C3%9F", true, "/\u00df"},
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
		{"/.", false, ""},
		{"/../admin", false, ""},
		{"/public/../../admin", false, ""},
		{"/%2e%2e/admin", false, ""},
		// Dot segments: browsers resolve them, so only a hand-made request
		// carries one, and backends disagree on them.
		{"/./admin", false, ""},
		{"/admin/.", false, ""},
		{"/%2e/admin", false, ""},
		{"/public/%2e%2e/admin", false, ""},
		{"/public/%2E%2E/admin", false, ""},
		{"/public/../admin", false, ""},
		{"/public/..;/admin", false, ""},
		{"/public/..%3B/admin", false, ""},
		{"/public/.;x/admin", false, ""},
		{"/a/b/../../admin", false, ""},
		// Encoded controls and bytes that are not UTF-8.
		{"/admin%0d%0aX:%20y", false, ""},
		{"/admin%09", false, ""},
		{"/admin%C2%85", false, ""}, // C1 control (NEL)
		{"/admin%C2%9F", false, ""},
		{"/%C0%AE%C0%AE/admin", false, ""}, // overlong "."
		{"/%C0%AF", false, ""},             // overlong "/"
		{"/admin%FF", false, ""},
		{"/admin%E9", false, ""}, // Latin-1
		// IIS mode: what Windows resolves to another name.
		{"/admin.", true, ""},
		{"/admin..", true, ""},
		{"/admin%20", true, ""},
		{"/admin%2E", true, ""},
		{"/admin.%20.", true, ""},
		{"/admin./users", true, ""},
		{"/admin%20/users", true, ""},
		{"/ADMIN./x", true, ""},
		{"/admin::$DATA", true, ""},
		{"/admin:$DATA", true, ""},
		{"/admin%3A%3A%24DATA", true, ""},
		{"/admin::$INDEX_ALLOCATION/x", true, ""},
		{"/admin:", true, ""},
		{"/admin.;x", true, ""},
		{"/ADMINI~1", true, ""},
		{"/admini%7E1/x", true, ""},
		{"/adm%C4%B1n", true, ""},      // dotless i upper-cases to I
		{"/%C4%B0", true, ""},          // dotted capital I lower-cases to i
		{"/ta%E2%84%AA", true, ""},     // Kelvin sign lower-cases to k
		{"/%C5%BFecret", true, ""},     // long s upper-cases to S
		{"/admin%EF%BC%8Fx", true, ""}, // full-width solidus
		{"/admin%EF%BC%BCx", true, ""}, // full-width reverse solidus
		{"/admin%E2%88%95x", true, ""}, // division slash
		{"/admin%EF%BC%8E", true, ""},  // full-width full stop
		{"/%EF%BD%81dmin", true, ""},   // full-width a
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
			want, _ := strconv.Unquote(`"` + tt.want + `"`)
			if err != nil || got != want {
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

func TestReadings(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"/admin/x", []string{"/admin/x"}},
		{"/admin;x/y", []string{"/admin/y", "/admin;x/y"}},
		{"/admin%3Bx/y", []string{"/admin/y", "/admin;x/y"}},
		{"//admin", []string{"/admin", "//admin"}},
		{"/a;p//b", []string{"/a/b", "/a;p/b", "/a//b", "/a;p//b"}},
		{"/;x/admin", []string{"/admin", "/;x/admin", "//admin"}},
	}
	for _, tt := range tests {
		r, err := readPath(tt.in, false)
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if got := r.p[:r.n]; !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHasEncodedControl(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"/a", false}, {"/a%20b", false}, {"/a%2f", false}, {"/%C3%A9", false}, {"/x?q=%0a", false},
		{"/a%00", true}, {"/a%0D%0A", true}, {"/a%1f", true}, {"/a%7F", true}, {"/a%c2%85", true}, {"/a%C2%9F/b", true},
		{"/%25%0a", true}, {"/a%c2%a0", false}, {"/a%c2", false}, {"/a%", false},
	} {
		if got := HasEncodedControl(tt.in); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.in, got, tt.want)
		}
	}
}
