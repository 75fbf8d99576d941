// Command feed is the Lambda function behind the results feed: Lambda's
// event source mapping hands it batches of the Results table's stream, and
// it sends every newly stored result to the results queue the Checkstack
// core consumes, reporting the first result it could not send so that
// Lambda retries from there.
package main

import (
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/feedhandler"
)

func main() {
	cfg, awsCfg, opts, err := app.FromEnvironment()
	var h *feedhandler.Handler
	if err == nil {
		h, err = app.NewFeed(cfg, awsCfg, opts)
	}
	if err != nil {
		slog.Error("feed function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}
