// Command satctl manages Checkstack satellites through the admin API: create
// satellites, rotate tokens, assign checks, publish script packages, read
// results. `satctl --help` explains each command.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/checkstack/satellite-backend/infra/satctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := satctl.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
