// Package lambdainvoke is the adapter of satellite.FanoutQueue over Lambda's
// asynchronous invocation: Invoke with X-Amz-Invocation-Type Event queues
// the event and answers 202 at once; Lambda runs the function later, retries
// it twice when it fails, and may deliver an event more than once.
package lambdainvoke

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// MaxEventBytes is the largest payload this adapter sends: Lambda's limit on
// an asynchronous invocation's event (256 KB).
const MaxEventBytes = 256 * 1024

// API is the part of the Lambda client a Client calls.
type API interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

var _ API = (*lambda.Client)(nil)

// Client invokes functions asynchronously through the Lambda API.
type Client struct{ api API }

// New returns a client over api (the local stack's gateway serves the
// Invoke API at the endpoint api is given).
func New(api API) *Client { return &Client{api: api} }

// InvokeAsync queues event for function (a name or an ARN). It returns once
// Lambda accepted the event (202), not when the function ran. ETOOLARGE
// when the event is over MaxEventBytes (nothing is sent).
func (c *Client) InvokeAsync(ctx context.Context, function string, event []byte) error {
	if len(event) > MaxEventBytes {
		return satellite.Errorf(satellite.ETOOLARGE, "event of %d bytes is over Lambda's 256 KB limit for asynchronous invocations", len(event))
	}
	out, err := c.api.Invoke(ctx, &lambda.InvokeInput{
		FunctionName: aws.String(function), InvocationType: types.InvocationTypeEvent, Payload: event,
	})
	if err != nil {
		// AWS's answer (status, code, message) says why; it holds nothing
		// secret.
		return satellite.Wrap(err, satellite.EINTERNAL, "invoke "+function+" asynchronously: "+describe(err))
	}
	if out.StatusCode != http.StatusAccepted {
		return satellite.Errorf(satellite.EINTERNAL, "invoke %s asynchronously: Lambda answered %d, not 202", function, out.StatusCode)
	}
	return nil
}

// describe names an error answer by its status, code and message ("404
// ResourceNotFoundException: Function not found: ..."), and any other
// error by its text.
func describe(err error) string {
	var resp *smithyhttp.ResponseError
	var api smithy.APIError
	if !errors.As(err, &resp) || !errors.As(err, &api) {
		return err.Error()
	}
	return fmt.Sprintf("Lambda answered %d %s: %s", resp.HTTPStatusCode(), api.ErrorCode(), api.ErrorMessage())
}

// Queue is satellite.FanoutQueue: each task is an asynchronous invocation of
// the fan-out function.
type Queue struct {
	Client   *Client
	Function string
}

var _ satellite.FanoutQueue = (*Queue)(nil)

// EnqueueFanout implements satellite.FanoutQueue.
func (q *Queue) EnqueueFanout(ctx context.Context, t satellite.FanoutTask) error {
	event, err := json.Marshal(t)
	if err != nil {
		return satellite.Wrap(err, satellite.EINTERNAL, "encode fan-out task")
	}
	return q.Client.InvokeAsync(ctx, q.Function, event)
}
