// Command disconnect is the Lambda function for the WebSocket route
// $disconnect: deletes the connection record and, when it was its
// satellite's current connection, moves the satellite to disconnected.
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
		h, err = app.NewDisconnect(cfg, awsCfg, opts)
	}
	if err != nil {
		slog.Error("disconnect function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(h.Disconnect)
}
