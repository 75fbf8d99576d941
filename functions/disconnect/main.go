// Command disconnect is the Lambda function for the WebSocket route
// $disconnect: deletes the connection record and, when it was its
// satellite's current connection, moves the satellite to disconnected.
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
	if err != nil {
		slog.Error("disconnect function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(a.WebSocket.Disconnect)
}
