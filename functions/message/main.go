// Command message is the Lambda function for the WebSocket route
// $default: handles every satellite frame.
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
		slog.Error("message function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(a.WebSocket.Message)
}
