// Command sweep is the Lambda function EventBridge runs every minute: it
// detects satellites whose heartbeat stopped, republishes unconfirmed
// lifecycle edges, and cleans up connections.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/checkstack/satellite-backend/shared/app"
)

func main() {
	a, err := app.FromEnvironment(context.Background())
	if err == nil && a.Sweep == nil {
		err = app.ErrNoManagementEndpoint
	}
	if err != nil {
		slog.Error("sweep function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(a.Sweep.Handle)
}
