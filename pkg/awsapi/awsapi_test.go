package awsapi_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/postern/postern/pkg/awsapi"
	"github.com/postern/postern/pkg/awsapi/awstest"
)

func newClient(t *testing.T, s *awstest.Server) *awsapi.Client {
	t.Helper()
	c, err := awsapi.New(awsapi.Config{Region: "eu-west-1", Endpoint: s.URL, Credentials: awstest.Credentials()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGetObject reads an object, gets 304 for the same ETag and the new
// content after a change, and AWS's error codes otherwise.
func TestGetObject(t *testing.T) {
	s := awstest.New(t)
	c := newClient(t, s)
	s.Put("postern-config", "mesh/catalog.yaml", []byte("v1"))
	data, tag, err := c.GetObject(t.Context(), "postern-config", "mesh/catalog.yaml", "")
	if err != nil || string(data) != "v1" || tag == "" {
		t.Fatalf("got %q %q %v", data, tag, err)
	}
	if data, tag2, err := c.GetObject(t.Context(), "postern-config", "mesh/catalog.yaml", tag); err != nil || data != nil || tag2 != tag {
		t.Fatalf("unchanged: got %q %q %v, want not modified", data, tag2, err)
	}
	s.Put("postern-config", "mesh/catalog.yaml", []byte("v2"))
	if data, tag2, err := c.GetObject(t.Context(), "postern-config", "mesh/catalog.yaml", tag); err != nil || string(data) != "v2" || tag2 == tag {
		t.Fatalf("changed: got %q %q %v", data, tag2, err)
	}
	if got := s.Requests(); !slices.Equal(got, []string{"GET /postern-config/mesh/catalog.yaml 200", "GET /postern-config/mesh/catalog.yaml 304", "GET /postern-config/mesh/catalog.yaml 200"}) {
		t.Errorf("requests: %v", got)
	}
	var apiErr *awsapi.APIError
	if _, _, err := c.GetObject(t.Context(), "postern-config", "nope", ""); !errors.As(err, &apiErr) || apiErr.Code != "NoSuchKey" || apiErr.Status != 404 {
		t.Errorf("missing key: got %v", err)
	}
	bad, _ := awsapi.New(awsapi.Config{Region: "eu-west-1", Endpoint: s.URL, Credentials: credentials.NewStaticCredentialsProvider(awstest.AccessKeyID, "wrong", "")})
	if _, _, err := bad.GetObject(t.Context(), "postern-config", "mesh/catalog.yaml", ""); !errors.As(err, &apiErr) || apiErr.Code != "SignatureDoesNotMatch" {
		t.Errorf("wrong secret: got %v", err)
	}
}

// TestDescribeInstances lists the running instances with the tag, over
// several pages, and reports EC2's errors.
func TestDescribeInstances(t *testing.T) {
	s := awstest.New(t)
	c := newClient(t, s)
	tag := map[string]string{"postern-cluster": "prod"}
	s.SetInstances("eu-west-1",
		awstest.Instance{ID: "i-1", PrivateIP: "10.0.0.1", PublicIP: "203.0.113.1", Zone: "eu-west-1a", Tags: tag},
		awstest.Instance{ID: "i-2", PrivateIP: "10.0.0.2", Zone: "eu-west-1b", Tags: tag},
		awstest.Instance{ID: "i-3", PrivateIP: "10.0.0.3", PublicIP: "203.0.113.3", Tags: tag, State: "stopped"},
		awstest.Instance{ID: "i-4", PrivateIP: "10.0.0.4", PublicIP: "203.0.113.4", Tags: map[string]string{"postern-cluster": "test"}},
		awstest.Instance{ID: "i-5", PrivateIP: "10.0.0.5", PublicIP: "203.0.113.5", Tags: tag},
	)
	s.SetPageSize(2)
	got, err := c.DescribeInstances(t.Context(), "eu-west-1", "postern-cluster", "prod")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range got {
		ids = append(ids, in.ID+"="+in.PublicIP)
	}
	if want := []string{"i-1=203.0.113.1", "i-2=", "i-5=203.0.113.5"}; !slices.Equal(ids, want) {
		t.Errorf("got %v, want %v", ids, want)
	}
	if got[0].Zone != "eu-west-1a" || got[0].Tags["postern-cluster"] != "prod" || got[0].PrivateIP != "10.0.0.1" {
		t.Errorf("got %+v", got[0])
	}
	if n := len(s.Requests()); n != 2 {
		t.Errorf("got %d requests, want 2 pages", n)
	}
	bad, _ := awsapi.New(awsapi.Config{Region: "eu-west-1", Endpoint: s.URL, Credentials: credentials.NewStaticCredentialsProvider("AKIDOTHER", "x", "")})
	var apiErr *awsapi.APIError
	if _, err := bad.DescribeInstances(t.Context(), "eu-west-1", "postern-cluster", "prod"); !errors.As(err, &apiErr) || apiErr.Code != "AuthFailure" {
		t.Errorf("wrong key: got %v", err)
	}
}

// TestEndpointFromEnvironment: without Config.Endpoint the client uses
// AWS_ENDPOINT_URL, as the AWS SDKs do; an endpoint that is not a plain
// http(s) URL is refused, and a password in it is never repeated.
func TestEndpointFromEnvironment(t *testing.T) {
	s := awstest.New(t)
	s.Put("postern-config", "mesh/catalog.yaml", []byte("v1"))
	t.Setenv("AWS_ENDPOINT_URL", s.URL+"/")
	c, err := awsapi.New(awsapi.Config{Region: "eu-west-1", Credentials: awstest.Credentials()})
	if err != nil {
		t.Fatal(err)
	}
	if data, _, err := c.GetObject(t.Context(), "postern-config", "mesh/catalog.yaml", ""); err != nil || string(data) != "v1" {
		t.Fatalf("through AWS_ENDPOINT_URL: got %q, %v", data, err)
	}
	for _, bad := range []string{"ftp://127.0.0.1:1", "127.0.0.1:9000", "http://", "http://127.0.0.1:1/?x=y", "http://127.0.0.1:1/#f",
		"https://admin:hunter2@s3.internal", "http://[::1", "https://admin:hunter2@[::1"} {
		t.Setenv("AWS_ENDPOINT_URL", bad)
		_, err := awsapi.New(awsapi.Config{Region: "eu-west-1", Credentials: awstest.Credentials()})
		if err == nil || !strings.Contains(err.Error(), "endpoint") {
			t.Errorf("AWS_ENDPOINT_URL=%s: got %v, want a refusal", bad, err)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("AWS_ENDPOINT_URL=%s: the error repeats the password: %v", bad, err)
		}
	}
}
