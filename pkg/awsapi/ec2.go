package awsapi

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// ec2Version is the EC2 Query API version DescribeInstances is called in.
const ec2Version = "2016-11-15"

// Instance is what DescribeInstances tells of one instance.
type Instance struct {
	// ID is the instance id.
	ID string
	// PrivateIP and PublicIP are its primary addresses; PublicIP is empty
	// without one.
	PrivateIP, PublicIP string
	// Zone is its availability zone.
	Zone string
	// Tags are its tags.
	Tags map[string]string
}

// maxPages bounds the pages of one DescribeInstances listing.
const maxPages = 50

// DescribeInstances lists the running instances of region that carry tag
// key with value (all pages). An AWS error answer is an *APIError.
func (c *Client) DescribeInstances(ctx context.Context, region, key, value string) ([]Instance, error) {
	var out []Instance
	token := ""
	for range maxPages {
		page, next, err := c.describePage(ctx, region, key, value, token)
		if err != nil {
			return nil, fmt.Errorf("ec2 describe instances in %s: %w", region, err)
		}
		out = append(out, page...)
		if next == "" {
			sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
			return out, nil
		}
		token = next
	}
	return nil, fmt.Errorf("ec2 describe instances in %s: more than %d pages", region, maxPages)
}

func (c *Client) describePage(ctx context.Context, region, key, value, token string) ([]Instance, string, error) {
	form := url.Values{
		"Action": {"DescribeInstances"}, "Version": {ec2Version},
		"Filter.1.Name": {"tag:" + key}, "Filter.1.Value.1": {value},
		"Filter.2.Name": {"instance-state-name"}, "Filter.2.Value.1": {"running"},
		"MaxResults": {"1000"},
	}
	if token != "" {
		form.Set("NextToken", token)
	}
	body := form.Encode()
	u := "https://ec2." + region + ".amazonaws.com/"
	if c.cfg.Endpoint != "" {
		u = c.cfg.Endpoint + "/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	req.ContentLength = int64(len(body))
	resp, err := c.do(ctx, req, "ec2", region, sha256Hex([]byte(body)), false)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := readBody(resp.Body, 16<<20)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", ec2Error(resp.StatusCode, b)
	}
	var x describeResponse
	if err := xml.Unmarshal(b, &x); err != nil {
		return nil, "", fmt.Errorf("decode: %w", err)
	}
	var out []Instance
	for _, r := range x.Reservations {
		for _, i := range r.Instances {
			in := Instance{ID: i.ID, PrivateIP: i.PrivateIP, PublicIP: i.PublicIP, Zone: i.Placement.Zone, Tags: map[string]string{}}
			for _, t := range i.Tags {
				in.Tags[t.Key] = t.Value
			}
			out = append(out, in)
		}
	}
	return out, x.NextToken, nil
}

// describeResponse is the part of DescribeInstancesResponse read.
type describeResponse struct {
	Reservations []struct {
		Instances []struct {
			ID        string `xml:"instanceId"`
			PrivateIP string `xml:"privateIpAddress"`
			PublicIP  string `xml:"ipAddress"`
			Placement struct {
				Zone string `xml:"availabilityZone"`
			} `xml:"placement"`
			Tags []struct {
				Key   string `xml:"key"`
				Value string `xml:"value"`
			} `xml:"tagSet>item"`
		} `xml:"instancesSet>item"`
	} `xml:"reservationSet>item"`
	NextToken string `xml:"nextToken"`
}

// ec2Error decodes EC2's XML error answer
// (<Response><Errors><Error><Code>…).
func ec2Error(status int, b []byte) *APIError {
	e := &APIError{Status: status}
	var x struct {
		Errors []struct {
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		} `xml:"Errors>Error"`
	}
	if xml.Unmarshal(b, &x) == nil && len(x.Errors) > 0 {
		e.Code, e.Message = x.Errors[0].Code, x.Errors[0].Message
	}
	if e.Code == "" {
		e.Message = strconv.Quote(string(b[:min(len(b), 200)]))
	}
	return e
}
