// Command admin is the Lambda function behind the IAM-authorised HTTP API
// operators and the Checkstack core use to manage satellites, assignments
// and script packages.
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
	if err == nil && a.Admin == nil {
		err = app.ErrNoManagementEndpoint
	}
	if err != nil {
		slog.Error("admin function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(a.Admin.Handle)
}
