// Command herald runs the Herald notification hub and its development tools.
//
//	herald serve   run a node (zero config: embedded store under ./data)
//	herald token   mint a user token for development
//	herald send    send a notification through a node's API
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
)

const usage = `herald — self-hosted notification hub

Usage:
  herald serve [flags]     run a node; "herald serve -h" lists every setting
  herald token [flags]     mint a user JWT for development
  herald send [flags]      send a notification through the server API
  herald vapid             print a fresh VAPID key pair for Web Push
  herald bench SCENARIO    drive a running node: idle, unicast, fanout, ingest
                           (--peer centrifugo: a Centrifugo server, for comparison)

Run "herald <command> -h" for the flags of a command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx := context.Background()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = runServe(ctx, args)
	case "token":
		err = runToken(args, os.Stdout)
	case "send":
		err = runSend(ctx, args, os.Stdout)
	case "bench":
		err = runBench(ctx, args, os.Stdout)
	case "vapid":
		err = runVAPID(args, os.Stdout)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "herald: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald:", err)
		os.Exit(1)
	}
}
