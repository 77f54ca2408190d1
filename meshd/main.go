// Command meshd is the Postern regional mesh node, with its admin
// subcommands.
//
//	meshd run --config ...            serve (see meshd run -h)
//	meshd token create --group G      mint a one-time connector enrolment token
//	meshd authority init --out FILE   create the mesh authority key
//	meshd authority public-key --authority-key FILE   print its public key
//	meshd status                      print a running node's status
//	meshd route explain --app X       why a node routes app X the way it does
//	meshd gossip keygen --out FILE    create the gossip keyring (once per mesh)
//	meshd node credential ...         mint a mesh node's credential (authority key)
//	meshd node keys --state-dir DIR   create a node's keys, print the public halves
//	meshd revoke session|user|connector ...   revoke mesh-wide (authority key)
//	meshd demo                        run the whole system locally
//	meshd service install|uninstall|run [run flags]   Windows service
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "meshd:", err)
		os.Exit(1)
	}
}

const usage = `usage: meshd <command> [flags]

commands:
  run               serve as a mesh node
  token create      mint a one-time connector enrolment token for a group
  authority init    create the mesh authority key (once per mesh)
  authority public-key  print the authority's public key (for the auth functions)
  status            print a running node's status from its admin address
  route explain     show a node's candidate paths for an app, their costs and the choice
  gossip keygen     create the gossip keyring shared by the mesh nodes (once per mesh)
  node credential   mint a mesh node's credential with the authority key (each node of a cluster needs one)
  node keys         create a node's keys in its state directory and print their public halves
  revoke            revoke a session, a user or a connector on every mesh node (authority key)
  demo              run the whole system on this machine (development only)
  service           install|uninstall|run as a Windows service (run flags follow)
`

func dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch {
	case args[0] == "run":
		return runCmd(ctx, args[1:])
	case args[0] == "token" && len(args) > 1 && args[1] == "create":
		return tokenCreateCmd(args[2:])
	case args[0] == "authority" && len(args) > 1 && args[1] == "init":
		return authorityInitCmd(args[2:])
	case args[0] == "authority" && len(args) > 1 && args[1] == "public-key":
		return authorityPublicKeyCmd(args[2:])
	case args[0] == "route" && len(args) > 1 && args[1] == "explain":
		return routeExplainCmd(ctx, args[2:])
	case args[0] == "gossip" && len(args) > 1 && args[1] == "keygen":
		return gossipKeygenCmd(args[2:])
	case args[0] == "node" && len(args) > 1 && args[1] == "credential":
		return nodeCredentialCmd(args[2:])
	case args[0] == "node" && len(args) > 1 && args[1] == "keys":
		return nodeKeysCmd(args[2:])
	case args[0] == "revoke":
		return revokeCmd(ctx, args[1:])
	case args[0] == "status":
		return statusCmd(ctx, args[1:])
	case args[0] == "service":
		return serviceCmd(ctx, args[1:])
	case args[0] == "demo":
		return demoCmd(ctx, args[1:])
	case args[0] == "-h" || args[0] == "--help" || args[0] == "help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
