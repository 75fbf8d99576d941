// Command echofn is a test function: it echoes the event body, or fails when
// the body is "fail".
package main

import (
	"errors"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(func(ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		if ev.Body == "fail" {
			return events.APIGatewayProxyResponse{}, errors.New("asked to fail")
		}
		return events.APIGatewayProxyResponse{StatusCode: 200, Body: ev.Body}, nil
	})
}
