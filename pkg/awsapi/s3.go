package awsapi

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
)

// MaxObjectSize bounds the object GetObject reads.
const MaxObjectSize = 8 << 20

// GetObject reads object key of bucket. When etag is not empty it asks
// only for a newer version (If-None-Match): an unchanged object returns
// (nil, etag, nil). It returns the object's content and ETag; an AWS error
// answer is an *APIError.
func (c *Client) GetObject(ctx context.Context, bucket, key, etag string) ([]byte, string, error) {
	u := "https://" + bucket + ".s3." + c.cfg.Region + ".amazonaws.com/" + escapePath(key)
	if c.cfg.Endpoint != "" {
		u = c.cfg.Endpoint + "/" + bucket + "/" + escapePath(key)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", fmt.Errorf("s3 get s3://%s/%s: %w", bucket, key, err)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.do(ctx, req, "s3", c.cfg.Region, emptyHash, true)
	if err != nil {
		return nil, "", fmt.Errorf("s3 get s3://%s/%s: %w", bucket, key, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil, etag, nil
	case http.StatusOK:
		b, err := readBody(resp.Body, MaxObjectSize)
		if err != nil {
			return nil, "", fmt.Errorf("s3 get s3://%s/%s: %w", bucket, key, err)
		}
		tag := resp.Header.Get("ETag")
		if tag == "" {
			tag = `"` + sha256Hex(b) + `"`
		}
		return b, tag, nil
	}
	return nil, "", fmt.Errorf("s3 get s3://%s/%s: %w", bucket, key, s3Error(resp))
}

// s3Error decodes S3's XML error answer.
func s3Error(resp *http.Response) *APIError {
	e := &APIError{Status: resp.StatusCode}
	b, _ := readBody(resp.Body, 64<<10)
	var x struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	if xml.Unmarshal(b, &x) == nil {
		e.Code, e.Message = x.Code, x.Message
	}
	return e
}

// S3Source reads a catalogue (or any file) from one S3 object; it
// satisfies pkg/catalog's Source. It is safe for concurrent use.
type S3Source struct {
	client      *Client
	bucket, key string
}

// NewS3Source returns a source for the object at uri, "s3://bucket/key".
func NewS3Source(c *Client, uri string) (*S3Source, error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	bucket, key, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || bucket == "" || key == "" {
		return nil, fmt.Errorf("awsapi: %q is not s3://bucket/key", uri)
	}
	return &S3Source{client: c, bucket: bucket, key: key}, nil
}

// Fetch returns the object's content and ETag, or (nil, since, nil) when
// its ETag is still since.
func (s *S3Source) Fetch(ctx context.Context, since string) ([]byte, string, error) {
	return s.client.GetObject(ctx, s.bucket, s.key, since)
}

// String returns the object's URI, for logs.
func (s *S3Source) String() string { return "s3://" + s.bucket + "/" + s.key }
