package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/heraldhq/herald/pkg/push/webpush"
)

// runVAPID prints a fresh VAPID key pair, as environment lines.
func runVAPID(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("vapid", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	pub, priv, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		return fmt.Errorf("vapid: %w", err)
	}
	_, err = fmt.Fprintf(out, "HERALD_VAPID_PUBLIC_KEY=%s\nHERALD_VAPID_PRIVATE_KEY=%s\n", pub, priv)
	return err
}
