// Package discover finds the gossip addresses of the other mesh nodes, so
// that no operator fills in seeds by hand: from EC2 instance tags (the
// Auto Scaling groups of every region tag their nodes), or from a DNS
// name that the infrastructure keeps pointing at the nodes.
//
// It sits at the mesh's edge of the control plane: pkg/gossip asks it for
// seeds when it joins and whenever a node finds itself alone. The EC2 call
// is pkg/awsapi's (SigV4 with the instance role); DNS uses the system
// resolver. hashicorp/go-discover does the same for a dozen clouds, but
// brings their SDKs (AWS SDK v1, Azure, GCE, Kubernetes...) into meshd;
// these two providers are a page each.
package discover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/postern/postern/pkg/awsapi"
)

// Instances lists EC2 instances by tag; *awsapi.Client implements it.
type Instances interface {
	DescribeInstances(ctx context.Context, region, key, value string) ([]awsapi.Instance, error)
}

// Resolver looks up host names; *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config is a parsed discovery spec.
type Config struct {
	// Provider is "aws" or "dns".
	Provider string
	// Port is the gossip port of the nodes found; zero means 7946.
	Port int

	// Regions are the AWS regions to list (aws).
	Regions []string
	// TagKey and TagValue select the instances (aws).
	TagKey, TagValue string
	// PublicAddr selects the instances' public IPv4 addresses, false their
	// private ones (aws: addr_type=public_v4 or private_v4).
	PublicAddr bool
	// EC2 lists the instances (aws); nil means an awsapi client with the
	// default credentials.
	EC2 Instances

	// Name is the DNS name whose A and AAAA records are the nodes (dns).
	Name string
	// Resolver resolves Name (dns); nil means net.DefaultResolver.
	Resolver Resolver
}

// DefaultPort is the gossip port when a spec names none.
const DefaultPort = 7946

// Parse reads a spec of space-separated key=value pairs, as
// hashicorp/go-discover writes them:
//
//	provider=aws regions=eu-west-1,us-east-1 tag_key=postern-cluster tag_value=prod addr_type=public_v4 port=7946
//	provider=dns name=mesh-seeds.example.com port=7946
func Parse(spec string) (Config, error) {
	var c Config
	seen := map[string]bool{}
	for _, f := range strings.Fields(spec) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || v == "" || seen[k] {
			return Config{}, fmt.Errorf("discover: %q: want key=value, each key once", f)
		}
		seen[k] = true
		switch k {
		case "provider":
			c.Provider = v
		case "port":
			p, err := strconv.Atoi(v)
			if err != nil || p < 1 || p > 65535 {
				return Config{}, fmt.Errorf("discover: port %q", v)
			}
			c.Port = p
		case "regions", "region":
			c.Regions = strings.Split(v, ",")
		case "tag_key":
			c.TagKey = v
		case "tag_value":
			c.TagValue = v
		case "addr_type":
			switch v {
			case "public_v4":
				c.PublicAddr = true
			case "private_v4":
			default:
				return Config{}, fmt.Errorf("discover: addr_type %q: want public_v4 or private_v4", v)
			}
		case "name":
			c.Name = v
		default:
			return Config{}, fmt.Errorf("discover: unknown key %q", k)
		}
	}
	return c, c.check()
}

func (c Config) check() error {
	switch c.Provider {
	case "aws":
		if len(c.Regions) == 0 || slices.Contains(c.Regions, "") || c.TagKey == "" || c.TagValue == "" || c.Name != "" {
			return errors.New("discover: provider=aws needs regions, tag_key and tag_value (and no name)")
		}
	case "dns":
		if c.Name == "" || len(c.Regions) > 0 || c.TagKey != "" {
			return errors.New("discover: provider=dns needs name (and no regions or tags)")
		}
	default:
		return fmt.Errorf("discover: provider %q: want aws or dns", c.Provider)
	}
	return nil
}

// Discoverer finds nodes as a Config says. It is safe for concurrent use.
type Discoverer struct {
	cfg Config
}

// New checks cfg and returns a Discoverer. It does no network I/O.
func New(cfg Config) (*Discoverer, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Provider == "aws" && cfg.EC2 == nil {
		c, err := awsapi.New(awsapi.Config{Region: cfg.Regions[0]})
		if err != nil {
			return nil, fmt.Errorf("discover: %w", err)
		}
		cfg.EC2 = c
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	return &Discoverer{cfg: cfg}, nil
}

// Addrs returns the "ip:port" gossip addresses of the nodes found, sorted
// and without duplicates. When some regions fail it returns the others'
// addresses with an error naming the failures.
func (d *Discoverer) Addrs(ctx context.Context) ([]string, error) {
	var ips []netip.Addr
	var errs []error
	switch d.cfg.Provider {
	case "aws":
		for _, region := range d.cfg.Regions {
			in, err := d.cfg.EC2.DescribeInstances(ctx, region, d.cfg.TagKey, d.cfg.TagValue)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, i := range in {
				s := i.PrivateIP
				if d.cfg.PublicAddr {
					s = i.PublicIP
				}
				if a, err := netip.ParseAddr(s); err == nil {
					ips = append(ips, a)
				}
			}
		}
	case "dns":
		found, err := d.cfg.Resolver.LookupNetIP(ctx, "ip", d.cfg.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("look up %s: %w", d.cfg.Name, err))
		}
		ips = found
	}
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(d.cfg.Port)).String())
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("discover: %w", err)
	}
	return out, nil
}

// String describes the discovery for logs.
func (d *Discoverer) String() string {
	if d.cfg.Provider == "dns" {
		return "dns:" + d.cfg.Name
	}
	return "aws:" + strings.Join(d.cfg.Regions, ",") + ":" + d.cfg.TagKey + "=" + d.cfg.TagValue
}
