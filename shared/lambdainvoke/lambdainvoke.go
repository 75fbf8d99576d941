// Package lambdainvoke is the adapter of satellite.FanoutQueue over Lambda's
// asynchronous invocation: Invoke with X-Amz-Invocation-Type Event queues
// the event and answers 202 at once; Lambda runs the function later, retries
// it twice when it fails, and may deliver an event more than once.
package lambdainvoke

import (
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/checkstack/satellite-backend/shared/awsapi"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// MaxEventBytes is the largest payload this adapter sends: Lambda's limit on
// an asynchronous invocation's event (256 KB).
const MaxEventBytes = 256 * 1024

// Client invokes functions asynchronously through the Lambda API.
type Client struct {
	api      *awsapi.Client
	endpoint string
}

// New returns a client over api; endpoint overrides Lambda's regional
// endpoint (the local stack's gateway serves the Invoke API).
func New(api *awsapi.Client, endpoint string) *Client {
	return &Client{api: api, endpoint: api.Endpoint("lambda", endpoint)}
}

// InvokeAsync queues event for function (a name or an ARN). It returns once
// Lambda accepted the event (202), not when the function ran. ETOOLARGE
// when the event is over MaxEventBytes (nothing is sent).
func (c *Client) InvokeAsync(ctx context.Context, function string, event []byte) error {
	if len(event) > MaxEventBytes {
		return satellite.Errorf(satellite.ETOOLARGE, "event of %d bytes is over Lambda's 256 KB limit for asynchronous invocations", len(event))
	}
	u, err := awsapi.JoinURL(c.endpoint, "/2015-03-31/functions/"+awsapi.EscapeSegment(function)+"/invocations")
	if err != nil {
		return satellite.Wrap(err, satellite.EINTERNAL, "Lambda endpoint")
	}
	resp, err := c.api.Do(ctx, awsapi.Request{
		Service: "lambda", ServiceID: "Lambda", Operation: "Invoke", Resource: function,
		Method: http.MethodPost, URL: u, Body: event,
		Header: http.Header{"X-Amz-Invocation-Type": {"Event"}, "Content-Type": {"application/json"}},
	})
	if err != nil {
		// AWS's answer (status, code, message, request id) says why; it
		// holds nothing secret.
		return satellite.Wrap(err, satellite.EINTERNAL, "invoke "+function+" asynchronously: "+err.Error())
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return satellite.Errorf(satellite.EINTERNAL, "invoke %s asynchronously: Lambda answered %d, not 202", function, resp.StatusCode)
	}
	return nil
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
