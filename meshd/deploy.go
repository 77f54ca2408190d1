package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/postern/postern/pkg/acmecert"
	"github.com/postern/postern/pkg/awsapi"
	"github.com/postern/postern/pkg/discover"
	"github.com/postern/postern/pkg/meshnode"
)

// deployFlags are the run flags of a deployment without hand-kept parts:
// the catalogue from one S3 object, seeds discovered, certificates by
// ACME.
type deployFlags struct {
	awsRegion, discover, acmeDirectory, acmeEmail, acmeCA *string
}

func addDeployFlags(fs *flag.FlagSet) *deployFlags {
	return &deployFlags{
		awsRegion: fs.String("aws-region", "", "AWS region of the S3 catalogue bucket (default: AWS_REGION)"),
		discover: fs.String("join-discover", "", `find the other mesh nodes to join (with --join, or instead), go-discover style: `+
			`"provider=aws regions=eu-west-1,us-east-1 tag_key=postern-cluster tag_value=prod addr_type=public_v4" (EC2 tags, the instance role) or "provider=dns name=mesh-seeds.example.com"`),
		acmeDirectory: fs.String("acme-directory", "", "ACME directory URL, e.g. https://acme-v02.api.letsencrypt.org/directory: obtain and renew the certificates of the catalogue's hosts (and --public-url's) by TLS-ALPN-01 on the public listener; --tls-cert then serves other names only"),
		acmeEmail:     fs.String("acme-email", "", "contact e-mail of the ACME account"),
		acmeCA:        fs.String("acme-ca", "", "extra CA file (PEM) that signs the ACME server's own certificate (a private ACME server)"),
	}
}

// apply sets cfg's catalogue source (catalog "s3://bucket/key"), seed
// discovery and ACME from the flags.
func (d *deployFlags) apply(cfg *meshnode.Config, catalog string) error {
	if strings.HasPrefix(catalog, "s3://") {
		c, err := awsapi.New(awsapi.Config{Region: *d.awsRegion})
		if err != nil {
			return fmt.Errorf("--catalog %s: %w", catalog, err)
		}
		if cfg.CatalogSource, err = awsapi.NewS3Source(c, catalog); err != nil {
			return fmt.Errorf("--catalog: %w", err)
		}
	}
	if *d.discover != "" {
		if cfg.Cluster == nil {
			return fmt.Errorf("--join-discover needs --gossip-listen")
		}
		dc, err := discover.Parse(*d.discover)
		if err != nil {
			return fmt.Errorf("--join-discover: %w", err)
		}
		dd, err := discover.New(dc)
		if err != nil {
			return fmt.Errorf("--join-discover: %w", err)
		}
		cfg.Cluster.Discover = dd.Addrs
	}
	if *d.acmeDirectory != "" {
		hc, err := httpClientWithCA(*d.acmeCA)
		if err != nil {
			return fmt.Errorf("--acme-ca: %w", err)
		}
		cfg.ACME = &acmecert.Config{DirectoryURL: *d.acmeDirectory, Email: *d.acmeEmail, HTTPClient: hc}
	}
	return nil
}
