// Package awstest is a local stand-in for the two AWS APIs pkg/awsapi
// calls, speaking their real wire formats: S3 GetObject (path-style,
// ETag, If-None-Match and 304, XML errors) and the EC2 Query API's
// DescribeInstances (form-encoded POST, tag and state filters, paging with
// NextToken, XML answers). Every request must carry a valid Signature
// Version 4 for the configured credentials, recomputed here from the
// request as AWS does; a wrong one gets S3's SignatureDoesNotMatch or
// EC2's AuthFailure. Tests of pkg/awsapi, pkg/catalog, pkg/discover and
// pkg/harness use it; nothing in a binary does.
package awstest

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Credentials the stand-in accepts.
const (
	AccessKeyID     = "AKIDPOSTERNTEST"
	SecretAccessKey = "postern-test-secret"
)

// Server is the stand-in. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server

	mu        sync.Mutex // guards the following
	objects   map[string][]byte
	instances map[string][]Instance // by region
	pageSize  int
	requests  []string
	fail      int
}

// Instance is an EC2 instance the stand-in lists.
type Instance struct {
	ID, PrivateIP, PublicIP, Zone, State string
	Tags                                 map[string]string
}

// New starts a stand-in on 127.0.0.1 and stops it at the test's end.
func New(tb interface {
	Helper()
	Cleanup(func())
}) *Server {
	tb.Helper()
	s := &Server{objects: map[string][]byte{}, instances: map[string][]Instance{}, pageSize: 1000}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	return s
}

// Credentials returns a provider of the credentials the stand-in accepts.
func Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")
}

// Put stores an object.
func (s *Server) Put(bucket, key string, data []byte) {
	s.mu.Lock()
	s.objects[bucket+"/"+key] = bytes.Clone(data)
	s.mu.Unlock()
}

// SetInstances replaces region's instances.
func (s *Server) SetInstances(region string, in ...Instance) {
	s.mu.Lock()
	s.instances[region] = in
	s.mu.Unlock()
}

// SetPageSize makes DescribeInstances answer in pages of n instances.
func (s *Server) SetPageSize(n int) {
	s.mu.Lock()
	s.pageSize = n
	s.mu.Unlock()
}

// FailNext makes the next n requests fail with 503 SlowDown.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	s.fail = n
	s.mu.Unlock()
}

// Requests returns "<METHOD> <path> <status>" of every request so far.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func (s *Server) record(r *http.Request, status int) {
	s.mu.Lock()
	s.requests = append(s.requests, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, status))
	s.mu.Unlock()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s3 := r.Method == http.MethodGet
	s.mu.Lock()
	failing := s.fail > 0
	if failing {
		s.fail--
	}
	s.mu.Unlock()
	if failing {
		s.record(r, 503)
		writeS3Error(w, 503, "SlowDown", "Please reduce your request rate.")
		return
	}
	service, region, err := checkSignature(r, body, s3)
	if err != nil {
		s.record(r, 403)
		if s3 {
			writeS3Error(w, 403, "SignatureDoesNotMatch", err.Error())
		} else {
			writeEC2Error(w, 401, "AuthFailure", err.Error())
		}
		return
	}
	switch {
	case s3 && service == "s3":
		s.getObject(w, r)
	case r.Method == http.MethodPost && service == "ec2":
		s.describe(w, r, region, body)
	default:
		s.record(r, 400)
		writeS3Error(w, 400, "InvalidRequest", "unsupported request")
	}
}

// checkSignature recomputes the request's Signature Version 4 with the
// accepted credentials and compares it with the one sent.
func checkSignature(r *http.Request, body []byte, s3 bool) (service, region string, err error) {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return "", "", fmt.Errorf("no AWS4-HMAC-SHA256 authorization")
	}
	fields := map[string]string{}
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[0] != AccessKeyID || scope[4] != "aws4_request" {
		return "", "", fmt.Errorf("credential scope %q is not of the accepted key", fields["Credential"])
	}
	region, service = scope[2], scope[3]
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return "", "", fmt.Errorf("bad X-Amz-Date")
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if s3 && r.Header.Get("X-Amz-Content-Sha256") != hash {
		return "", "", fmt.Errorf("X-Amz-Content-Sha256 does not match the payload")
	}
	again, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	for _, h := range strings.Split(fields["SignedHeaders"], ";") {
		if h != "host" {
			again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	creds, _ := Credentials().Retrieve(context.Background())
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hash, service, region, when, func(o *v4.SignerOptions) {
		o.DisableURIPathEscaping = s3
	}); err != nil {
		return "", "", err
	}
	if again.Header.Get("Authorization") != auth {
		return "", "", fmt.Errorf("the request signature we calculated does not match the signature you provided")
	}
	return service, region, nil
}

func (s *Server) getObject(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	s.mu.Lock()
	data, ok := s.objects[path]
	s.mu.Unlock()
	if !ok {
		s.record(r, 404)
		writeS3Error(w, 404, "NoSuchKey", "The specified key does not exist.")
		return
	}
	sum := md5.Sum(data)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Last-Modified", time.Unix(0, 0).UTC().Format(http.TimeFormat))
	if inm := r.Header.Get("If-None-Match"); inm == etag {
		s.record(r, 304)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	s.record(r, 200)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

func (s *Server) describe(w http.ResponseWriter, r *http.Request, region string, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("Action") != "DescribeInstances" || form.Get("Version") == "" {
		s.record(r, 400)
		writeEC2Error(w, 400, "InvalidAction", "The action is not valid for this web service.")
		return
	}
	filters := map[string]string{}
	for i := 1; form.Get(fmt.Sprintf("Filter.%d.Name", i)) != ""; i++ {
		filters[form.Get(fmt.Sprintf("Filter.%d.Name", i))] = form.Get(fmt.Sprintf("Filter.%d.Value.1", i))
	}
	s.mu.Lock()
	var match []Instance
	for _, in := range s.instances[region] {
		if ok := matches(in, filters); ok {
			match = append(match, in)
		}
	}
	size := s.pageSize
	s.mu.Unlock()
	start, _ := strconv.Atoi(form.Get("NextToken"))
	end := min(start+size, len(match))
	next := ""
	if end < len(match) {
		next = strconv.Itoa(end)
	}
	s.record(r, 200)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>8f7724cf-496f-496e-8fe3-example</requestId><reservationSet>`)
	for _, in := range match[min(start, len(match)):end] {
		fmt.Fprintf(&b, `<item><reservationId>r-1</reservationId><ownerId>123456789012</ownerId><instancesSet><item><instanceId>%s</instanceId><instanceState><code>16</code><name>%s</name></instanceState><privateIpAddress>%s</privateIpAddress>`,
			html.EscapeString(in.ID), html.EscapeString(stateOf(in)), html.EscapeString(in.PrivateIP))
		if in.PublicIP != "" {
			fmt.Fprintf(&b, `<ipAddress>%s</ipAddress>`, html.EscapeString(in.PublicIP))
		}
		fmt.Fprintf(&b, `<placement><availabilityZone>%s</availabilityZone></placement><tagSet>`, html.EscapeString(in.Zone))
		for k, v := range in.Tags {
			fmt.Fprintf(&b, `<item><key>%s</key><value>%s</value></item>`, html.EscapeString(k), html.EscapeString(v))
		}
		b.WriteString(`</tagSet></item></instancesSet></item>`)
	}
	b.WriteString(`</reservationSet>`)
	if next != "" {
		fmt.Fprintf(&b, `<nextToken>%s</nextToken>`, next)
	}
	b.WriteString(`</DescribeInstancesResponse>`)
	io.WriteString(w, b.String())
}

func stateOf(in Instance) string {
	if in.State == "" {
		return "running"
	}
	return in.State
}

func matches(in Instance, filters map[string]string) bool {
	for name, want := range filters {
		switch {
		case name == "instance-state-name":
			if stateOf(in) != want {
				return false
			}
		case strings.HasPrefix(name, "tag:"):
			if in.Tags[strings.TrimPrefix(name, "tag:")] != want {
				return false
			}
		}
	}
	return true
}

func writeS3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Error><Code>%s</Code><Message>%s</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>`,
		html.EscapeString(code), html.EscapeString(msg))
}

func writeEC2Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>`,
		html.EscapeString(code), html.EscapeString(msg))
}
