// Command vexil runs the Vexil feature-flag and experimentation platform. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	// Schedules name IANA time zones ("Europe/Paris"): the binary carries Go's zone database
	// (about 450 KB) so it resolves them on hosts and images without /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/vexil-flags/vexil/services/platform"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := (&platform.Main{}).Run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "vexil:", err)
		os.Exit(1)
	}
}
