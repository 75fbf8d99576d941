// Command sweep is the Lambda function EventBridge runs every minute: it
// detects satellites whose heartbeat stopped, republishes unconfirmed
// lifecycle edges, and cleans up connections.
package main

import (
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/sweep"
)

func main() {
	cfg, awsCfg, opts, err := app.FromEnvironment()
	var h *sweep.Sweeper
	if err == nil {
		h, err = app.NewSweep(cfg, awsCfg, opts)
	}
	if err != nil {
		slog.Error("sweep function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}
