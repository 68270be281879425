// Command vexil runs the Vexil feature-flag and experimentation platform. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

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
