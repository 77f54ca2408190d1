package discover

import (
	"errors"
	"slices"
	"testing"

	"github.com/postern/postern/pkg/awsapi"
	"github.com/postern/postern/pkg/awsapi/awstest"
	"github.com/postern/postern/pkg/dnstest"
)

func TestParse(t *testing.T) {
	good := map[string]Config{
		"provider=aws regions=eu-west-1,us-east-1 tag_key=postern-cluster tag_value=prod addr_type=public_v4": {
			Provider: "aws", Regions: []string{"eu-west-1", "us-east-1"}, TagKey: "postern-cluster", TagValue: "prod", PublicAddr: true},
		"provider=dns name=mesh-seeds.example.com port=7000": {Provider: "dns", Name: "mesh-seeds.example.com", Port: 7000},
	}
	for spec, want := range good {
		got, err := Parse(spec)
		if err != nil || got.Provider != want.Provider || !slices.Equal(got.Regions, want.Regions) || got.TagKey != want.TagKey ||
			got.TagValue != want.TagValue || got.PublicAddr != want.PublicAddr || got.Name != want.Name || got.Port != want.Port {
			t.Errorf("%s: got %+v, %v", spec, got, err)
		}
	}
	for _, spec := range []string{
		"", "provider=gce", "provider=aws tag_key=a tag_value=b", "provider=aws regions=eu-west-1 tag_key=a",
		"provider=aws regions= tag_key=a tag_value=b", "provider=aws regions=eu-west-1, tag_key=a tag_value=b",
		"provider=dns", "provider=dns name=a name=b", "provider=dns name=a port=0", "provider=dns name=a port=70000",
		"provider=dns name=a bogus=1", "provider=dns name=a regions=x", "provider=aws regions=a tag_key=a tag_value=b addr_type=ipv6",
		"provider=dns name",
	} {
		if _, err := Parse(spec); err == nil {
			t.Errorf("%q: accepted", spec)
		}
	}
}

// TestAWS lists the tagged, running nodes of two regions through the EC2
// stand-in, by public or private address, and keeps what one region
// answered when the other fails.
func TestAWS(t *testing.T) {
	s := awstest.New(t)
	tag := map[string]string{"postern-cluster": "prod"}
	s.SetInstances("eu-west-1",
		awstest.Instance{ID: "i-1", PrivateIP: "10.0.0.1", PublicIP: "203.0.113.1", Tags: tag},
		awstest.Instance{ID: "i-2", PrivateIP: "10.0.0.2", PublicIP: "203.0.113.2", Tags: tag, State: "terminated"},
		awstest.Instance{ID: "i-9", PrivateIP: "10.0.0.9", PublicIP: "203.0.113.9", Tags: map[string]string{"postern-cluster": "staging"}})
	s.SetInstances("us-east-1", awstest.Instance{ID: "i-3", PrivateIP: "10.1.0.3", PublicIP: "198.51.100.3", Tags: tag})
	c, err := awsapi.New(awsapi.Config{Region: "eu-west-1", Endpoint: s.URL, Credentials: awstest.Credentials()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		public bool
		want   []string
	}{{true, []string{"198.51.100.3:7946", "203.0.113.1:7946"}}, {false, []string{"10.0.0.1:7946", "10.1.0.3:7946"}}} {
		d, err := New(Config{Provider: "aws", Regions: []string{"eu-west-1", "us-east-1"}, TagKey: "postern-cluster", TagValue: "prod", PublicAddr: tt.public, EC2: c})
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.Addrs(t.Context())
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("public %v: got %v, %v, want %v", tt.public, got, err, tt.want)
		}
	}
	d, _ := New(Config{Provider: "aws", Regions: []string{"eu-west-1", "us-east-1"}, TagKey: "postern-cluster", TagValue: "prod", PublicAddr: true, EC2: c})
	s.FailNext(1)
	got, err := d.Addrs(t.Context())
	var apiErr *awsapi.APIError
	if !errors.As(err, &apiErr) || !slices.Equal(got, []string{"198.51.100.3:7946"}) {
		t.Errorf("one region failing: got %v, %v; want the other's node and the error", got, err)
	}
}

// TestDNS resolves a name's A and AAAA records through a DNS server on
// loopback, and reports a name that does not exist.
func TestDNS(t *testing.T) {
	r := dnstest.Start(t, map[string][]string{"mesh-seeds.example.com": {"192.0.2.10", "192.0.2.11", "2001:db8::1"}}).Resolver()
	d, err := New(Config{Provider: "dns", Name: "mesh-seeds.example.com", Port: 7000, Resolver: r})
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Addrs(t.Context())
	if want := []string{"192.0.2.10:7000", "192.0.2.11:7000", "[2001:db8::1]:7000"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("got %v, %v, want %v", got, err, want)
	}
	d, _ = New(Config{Provider: "dns", Name: "nope.example.com", Resolver: r})
	if got, err := d.Addrs(t.Context()); err == nil || len(got) != 0 {
		t.Errorf("unknown name: got %v, %v", got, err)
	}
}
