// Command admin is the Lambda function behind the IAM-authorised HTTP API
// operators and the Checkstack core use to manage satellites, assignments
// and script packages.
package main

import (
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/checkstack/satellite-backend/shared/admin"
	"github.com/checkstack/satellite-backend/shared/app"
)

func main() {
	cfg, awsCfg, opts, err := app.FromEnvironment()
	var h *admin.Handler
	if err == nil {
		h, err = app.NewAdmin(cfg, awsCfg, opts)
	}
	if err != nil {
		slog.Error("admin function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}
