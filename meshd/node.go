package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/cli"
	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/meshnode"
	"github.com/postern/postern/pkg/revoke"
	"github.com/postern/postern/pkg/wgkey"
)

// nodeKeysCmd is "meshd node keys": create (or read) a node's keys in its
// state directory and print their public halves, for minting its
// credential on the admin host.
func nodeKeysCmd(fs *flag.FlagSet) func(context.Context) error {
	stateDir := fs.String("state-dir", "/var/lib/postern-meshd", "the node's state directory (keys are created there, 0600, when missing)")
	return func(context.Context) error { return nodeKeys(*stateDir) }
}

func nodeKeys(stateDir string) error {
	keys, err := meshnode.InitKeys(stateDir)
	if err != nil {
		return err
	}
	fmt.Printf("--wg-key %s --node-key %s\n", keys.WG, authority.MarshalPublicKey(keys.Node))
	return nil
}

// nodeCredentialCmd is "meshd node credential": mint a node's credential,
// signed with the mesh authority key, for its id, region and keys.
func nodeCredentialCmd(fs *flag.FlagSet) func(context.Context) error {
	authKey := fs.String("authority-key", "", "mesh authority key file (required)")
	id := fs.String("id", "", "the node's id, as its --id (required)")
	region := fs.String("region", "", "the node's region, as its --region (required)")
	stateDir := fs.String("state-dir", "", "the node's state directory: its keys are read there (created when missing) and the credential is written there as node.cred")
	wgPub := fs.String("wg-key", "", "the node's WireGuard public key (base64), instead of --state-dir (see \"meshd node keys\")")
	nodePub := fs.String("node-key", "", "the node's Ed25519 node public key (base64), instead of --state-dir")
	out := fs.String("out", "", "where to write the credential (default: node.cred in --state-dir; \"-\" prints it)")
	ttl := fs.Duration("ttl", authority.DefaultNodeCredentialTTL, "how long the credential is valid (at most 17568h)")
	return func(context.Context) error {
		return nodeCredential(*authKey, *id, *region, *stateDir, *wgPub, *nodePub, *out, *ttl)
	}
}

func nodeCredential(authKey, id, region, stateDir, wgPub, nodePub, out string, ttl time.Duration) error {
	if authKey == "" || id == "" || region == "" {
		return cli.Usagef("--authority-key, --id and --region are required")
	}
	var keys meshnode.Keys
	switch {
	case stateDir != "" && wgPub == "" && nodePub == "":
		var err error
		if keys, err = meshnode.InitKeys(stateDir); err != nil {
			return err
		}
		if out == "" {
			out = meshnode.NodeCredentialPath(stateDir)
		}
	case stateDir == "" && wgPub != "" && nodePub != "":
		wg, err := wgkey.ParsePublic(wgPub)
		if err != nil {
			return fmt.Errorf("--wg-key: %w", err)
		}
		nk, err := authority.ParsePublicKey(nodePub)
		if err != nil {
			return fmt.Errorf("--node-key: %w", err)
		}
		keys = meshnode.Keys{WG: wg, Node: ed25519.PublicKey(nk)}
	default:
		return cli.Usagef("give either --state-dir, or both --wg-key and --node-key")
	}
	if out == "" {
		return cli.Usagef("--out is required with --wg-key and --node-key")
	}
	auth, err := loadAuthority(authKey)
	if err != nil {
		return err
	}
	cred, err := auth.IssueNodeCredential(id, region, keys.WG, keys.Node, ttl)
	if err != nil {
		return err
	}
	if out == "-" {
		fmt.Println(cred.String())
		return nil
	}
	if err := authority.SaveNodeCredential(out, cred); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote node credential %s for node %s in %s, valid until %s\n", out, id, region, cred.Expires.UTC().Format(time.RFC3339))
	return nil
}

func loadAuthority(path string) (*authority.Authority, error) {
	key, err := authority.LoadKey(path)
	if err != nil {
		return nil, err
	}
	return authority.New(authority.Config{Key: key})
}

// revokeCmd is "meshd revoke session|user|connector": sign a revocation
// with the mesh authority key and hand it to any mesh node, which spreads
// it to every node within seconds.
func revokeCmd(kind string) func(fs *flag.FlagSet) func(context.Context) error {
	return func(fs *flag.FlagSet) func(context.Context) error {
		var r revocation
		r.kind = kind
		fs.StringVar(&r.authKey, "authority-key", "", "mesh authority key file (required)")
		fs.StringVar(&r.mesh, "mesh", "", "HTTPS URL of any mesh node that takes the revocation (required unless --print)")
		fs.StringVar(&r.meshCA, "mesh-ca", "", "extra CA file (PEM) that signs the mesh's certificate")
		fs.BoolVar(&r.printOnly, "print", false, "print the signed revocation instead of sending it")
		fs.DurationVar(&r.ttl, "ttl", 0, "how long the revocation lives (default: 24h for sessions and users, 367 days for connectors)")
		switch kind {
		case "session":
			fs.StringVar(&r.subject, "sid", "", "the session id (sid) to end (required)")
		case "user":
			fs.StringVar(&r.subject, "user", "", "the user or application: <tenant id>/<object id> as in X-Postern-User, or a workload: wif:<issuer id>/<sub> (required)")
			fs.StringVar(&r.before, "before", "", "refuse the user's sign-ins up to this time, its second included (RFC 3339; default: now)")
		case "connector":
			fs.StringVar(&r.subject, "id", "", "the connector id")
			fs.StringVar(&r.key, "key", "", "the connector's WireGuard public key (base64), instead of --id")
		}
		return func(ctx context.Context) error { return r.run(ctx) }
	}
}

// revocation is the parsed flags of one "meshd revoke" command.
type revocation struct {
	kind, authKey, mesh, meshCA, subject, before, key string
	printOnly                                         bool
	ttl                                               time.Duration
}

func (r *revocation) run(ctx context.Context) error {
	kind, subject, before, key := r.kind, r.subject, r.before, r.key
	now := time.Now()
	var e revoke.Entry
	switch kind {
	case "session":
		if subject == "" {
			return cli.Usagef("--sid is required")
		}
		e = revoke.Session(subject, now, r.ttl)
	case "user":
		if subject == "" {
			return cli.Usagef("--user is required")
		}
		at := now
		if before != "" {
			t, err := time.Parse(time.RFC3339, before)
			if err != nil {
				return fmt.Errorf("--before: %w", err)
			}
			at = t
		}
		e = revoke.User(subject, at, now, r.ttl)
	case "connector":
		switch {
		case (subject == "") == (key == ""):
			return cli.Usagef("give --id or --key")
		case key != "":
			pub, err := wgkey.ParsePublic(key)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			e = revoke.ConnectorKey(pub, now, r.ttl)
		default:
			e = revoke.Connector(subject, now, r.ttl)
		}
	}
	if r.authKey == "" || (r.mesh == "" && !r.printOnly) {
		return cli.Usagef("--authority-key and --mesh (or --print) are required")
	}
	auth, err := loadAuthority(r.authKey)
	if err != nil {
		return err
	}
	signed, err := auth.SignRevocation(e)
	if err != nil {
		return err
	}
	if r.printOnly {
		fmt.Println(signed)
		return nil
	}
	hc, err := httpClientWithCA(r.meshCA)
	if err != nil {
		return err
	}
	resp, err := (&enroll.Client{BaseURL: r.mesh, HTTPClient: hc}).Revoke(ctx, signed)
	if err != nil {
		return err
	}
	fmt.Printf("revoked %s %s until %s; it reaches every mesh node within seconds\n", resp.Kind, resp.Subject, resp.Until.Format(time.RFC3339))
	return nil
}
