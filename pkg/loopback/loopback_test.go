package loopback_test

import (
	"testing"

	"github.com/postern/postern/pkg/loopback"
)

func TestCheckAddr(t *testing.T) {
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"", true},
		{"127.0.0.1:7701", true},
		{"127.9.9.9:0", true},
		{"[::1]:7701", true},
		{"[::ffff:127.0.0.1]:7701", true},
		{"localhost:7701", true},
		{"0.0.0.0:7701", false},
		{":7701", false}, // every interface
		{"[::]:7701", false},
		{"10.0.0.1:7701", false},
		{"[::ffff:10.0.0.1]:7701", false},
		{"localhost.evil.example:7701", false},
		{"LOCALHOST.:7701", false},
		{"127.0.0.1", false}, // no port
		{"[::1%eth0]:7701", true},
		{"example.com:80", false},
	} {
		err := loopback.CheckAddr(tt.addr)
		if (err == nil) != tt.ok {
			t.Errorf("CheckAddr(%q): got %v, want ok=%v", tt.addr, err, tt.ok)
		}
	}
}

func TestIsHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "127.0.0.1": true, "::1": true, "127.255.255.254": true,
		"": false, "0.0.0.0": false, "::": false, "[::1]": false, "192.168.1.1": false, "app.localhost": false,
	} {
		if got := loopback.IsHost(host); got != want {
			t.Errorf("IsHost(%q): got %v, want %v", host, got, want)
		}
	}
}
