// Command fanout is the Lambda function that runs fan-out tasks: the admin
// function invokes it asynchronously, once per segment of a job (a package
// refresh, the sandbox policy), and it posts the job's frame to the
// segment's connections, records its progress, and before its deadline
// hands the rest of the segment on to a fresh invocation of itself.
package main

import (
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/fanout"
)

func main() {
	cfg, awsCfg, opts, err := app.FromEnvironment()
	var w *fanout.Worker
	if err == nil {
		w, err = app.NewFanout(cfg, awsCfg, opts)
	}
	if err != nil {
		slog.Error("fan-out function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(w.Handle)
}
