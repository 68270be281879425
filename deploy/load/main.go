// Command load measures Vexil's SDK API against the goals of issue 3 ("Performance"). It starts
// what it measures in this process, on 127.0.0.1 only, against a fresh PostgreSQL database that it
// creates, fills and drops, runs for a bounded time, prints a result table and exits.
//
//	go run ./deploy/load http [flags]   OFREP single and bulk evaluation vs a bare echo handler
//	go run ./deploy/load sse [flags]    10,000 SSE connections: memory per connection, delivery time
//	go run ./deploy/load write [flags]  management writes with read-your-writes: toggles, 1,000 flags by 8 clients
//
// Run with -h after the scenario for its flags. See deploy/load/README.md.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func usage() {
	fmt.Fprintln(os.Stderr, `usage: go run ./deploy/load <scenario> [flags]

scenarios:
  http   OFREP single evaluation (1,000 flags) and bulk evaluation (100 flags) against a bare
         echo JSON handler, keep-alive, closed loop; req/s, latency percentiles, goal check.
         -serve-only starts the servers for wrk (deploy/load/wrk.sh) and waits.
  sse    N SSE connections (default 10,000) to /sdk/v1/stream; memory per connection; a flag
         change (event store -> projector -> api) timed until every connection received it.
  write  every role in this process: sequential toggles (p50, p99) and 1,000 flags with
         targeting created by 8 clients, each answer after its read models applied it.

each scenario takes -h for its flags`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var err error
	switch os.Args[1] {
	case "http":
		err = runHTTP(ctx, os.Args[2:], log)
	case "sse":
		err = runSSE(ctx, os.Args[2:], log)
	case "write":
		err = runWrite(ctx, os.Args[2:], log)
	case "sse-client": // the client side of `sse -client-proc`, started by it
		err = runSSEClient(ctx, os.Args[2:])
	case "-h", "-help", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}
