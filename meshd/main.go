// Command meshd is the Postern regional mesh node, with its admin
// subcommands. "meshd --help" lists them; "meshd <command> --help" shows a
// command's flags.
//
//	meshd run --authority-key FILE --catalog FILE ...   serve as a mesh node
//	meshd run --config /etc/postern/meshd.yaml         the same settings from a file
//	meshd config check --config FILE                    validate the settings offline
//	meshd catalog check --catalog FILE                  validate a catalogue, run its policy tests
//	meshd token create --group G                       mint a one-time connector enrolment token
//	meshd authority init --out FILE                    create the mesh authority key
//	meshd authority public-key --authority-key FILE    print its public key (for the auth functions)
//	meshd status                                       print a running node's status
//	meshd route explain --app X                        why a node routes app X the way it does
//	meshd gossip keygen --out FILE                     create the gossip keyring (once per mesh)
//	meshd node keys --state-dir DIR                    create a node's keys, print the public halves
//	meshd node credential ...                          mint a mesh node's credential (authority key)
//	meshd revoke session|user|connector ...            revoke mesh-wide (authority key)
//	meshd service install|uninstall|run [run flags]    Windows service
//	meshd version                                      version, VCS revision and Go version
//
// The local demo is its own command (meshd/demo), so this binary links no
// development identity provider, sample app or network simulator.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/postern/postern/pkg/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := newApp().Exit(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// Defaults shared by several commands.
const (
	// defaultAdmin is the node's loopback admin address: outside the
	// Prometheus exporters' 9100-9999 range (node_exporter has 9100).
	defaultAdmin = "127.0.0.1:7701"
	// defaultCatalog is where the packages put the catalogue.
	defaultCatalog = "/etc/postern/catalog.yaml"
)

// newApp is meshd's command table: add a row to add a subcommand.
func newApp() *cli.App {
	app := &cli.App{Name: "meshd", Summary: "the Postern regional mesh node and its admin commands"}
	app.Commands = []cli.Command{
		{Name: "run", Summary: "serve as a mesh node", Flags: runCmd, Config: true},
		cli.ConfigCheck(app, "run", checkCatalogSetting),
		{Name: "catalog check", Summary: "validate a catalogue offline and run its policy tests", Flags: catalogCheckCmd},
		{Name: "token create", Summary: "mint a one-time connector enrolment token for a group of the catalogue", Flags: tokenCreateCmd},
		{Name: "authority init", Summary: "create the mesh authority key (once per mesh)", Flags: authorityInitCmd},
		{Name: "authority public-key", Summary: "print the authority's public key (for the auth functions)", Flags: authorityPublicKeyCmd},
		{Name: "status", Summary: "print a running node's status from its admin address", Flags: statusCmd},
		{Name: "route explain", Summary: "show a node's paths for an app, their costs and the choice", Flags: routeExplainCmd},
		{Name: "gossip keygen", Summary: "create the gossip keyring shared by the mesh nodes (once per mesh)", Flags: gossipKeygenCmd},
		{Name: "node keys", Summary: "create a node's keys in its state directory and print their public halves", Flags: nodeKeysCmd},
		{Name: "node credential", Summary: "mint a mesh node's credential with the authority key (each node of a cluster needs one)", Flags: nodeCredentialCmd},
		{Name: "revoke session", Summary: "end a session (by its sid) on every mesh node (authority key)", Flags: revokeCmd("session")},
		{Name: "revoke user", Summary: "refuse a user's sign-ins on every mesh node (authority key)", Flags: revokeCmd("user")},
		{Name: "revoke connector", Summary: "detach and refuse a connector on every mesh node (authority key)", Flags: revokeCmd("connector")},
		{Name: "service", Args: "install|uninstall|run [run flags]", Summary: "install, uninstall or run as a Windows service (the run flags follow)",
			Raw: func(ctx context.Context, args []string) error { return serviceCmd(ctx, args, app) }},
	}
	return app
}
