// Command disconnect is the Lambda function for the WebSocket route
// $disconnect: closes the connection record and, for a satellite's current connection, its connected edge.
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
