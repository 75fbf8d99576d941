// Command connect is the Lambda function for the WebSocket route
// $connect: records each new WebSocket connection.
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
		slog.Error("connect function cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(a.WebSocket.Connect)
}
