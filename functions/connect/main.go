// Command connect is the Lambda function for the WebSocket route
// $connect: records each new WebSocket connection.
package main

import (
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/wshandler"
)

func main() {
	cfg, awsCfg, opts, err := app.FromEnvironment()
	var h *wshandler.Handler
	if err == nil {
		h, err = app.NewConnect(cfg, awsCfg, opts)
	}
	if err != nil {
		slog.Error("connect function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(h.Connect)
}
