package session

import (
	"errors"
	"testing"
)

func TestValidReturnPath(t *testing.T) {
	good := []struct{ in, want string }{
		{"/", "/"},
		{"/x", "/x"},
		{"/app/page?q=1&next=/y", "/app/page?q=1&next=/y"},
		{"/search?q=a%20b", "/search?q=a%20b"},
		{"/caf%C3%A9", "/caf%C3%A9"},
		{"/a/b/", "/a/b/"},
		{"/x?", "/x?"},
	}
	for _, tt := range good {
		t.Run("ok "+tt.in, func(t *testing.T) {
			got, err := ValidReturnPath(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v, want %q", got, err, tt.want)
			}
		})
	}
	hostile := []string{
		"",
		"//evil.com",
		"///evil.com",
		"/\\evil.com",
		"\\\\evil.com",
		"https:evil.com",
		"https://evil.com",
		"http://evil.com/x",
		"javascript:alert(1)",
		"evil.com",
		"%2F%2Fevil.com",
		"/%2F%2Fevil.com",
		"/%2f/evil.com",
		"/%5Cevil.com",
		"/%252F%252Fevil.com",
		"/%25252F%25252Fevil.com",
		"/\tevil.com",
		"/\t/evil.com",
		"/\n/evil.com",
		"/\r\n/evil.com",
		"/ /evil.com",
		" /x",
		"/x y",
		"/%09/evil.com",
		"/%0d%0aSet-Cookie:x=y",
		"/%00",
		"/@evil.com",
		"/x@evil.com",
		"/.@evil.com",
		"/%40evil.com",
		"/./",
		"/../evil",
		"/a/%2e%2e/b",
		"/.//evil.com",
		"/a//b",
		"/x#frag",
		"/x\\y",
		"/x?next=\\evil",
		"/caf\u00e9",
		"/%zz",
		"/x\x7f",
	}
	for _, in := range hostile {
		t.Run("refuse "+in, func(t *testing.T) {
			got, err := ValidReturnPath(in)
			if !errors.Is(err, ErrBadReturnPath) {
				t.Errorf("got %q, %v, want %v", got, err, ErrBadReturnPath)
			}
		})
	}
}
