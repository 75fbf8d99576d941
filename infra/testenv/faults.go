package testenv

import (
	"context"
	"errors"
	"net/http"
	"sync"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Fault makes one DynamoDB request go wrong, the way the network can:
// LoseResponse lets DynamoDB apply the write and then loses its answer (the
// SDK retries, and the retry meets its own effect); Fail answers a
// non-retryable error without sending it. Install it with APIOptions; Match
// picks the request (by operation and input); it strikes once.
type Fault struct {
	Match        func(operation string, input any) bool
	LoseResponse bool

	mu    sync.Mutex
	fired int
}

// Fired returns how often the fault struck.
func (f *Fault) Fired() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fired
}

func (f *Fault) strike(operation string, input any) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fired > 0 || !f.Match(operation, input) {
		return false
	}
	f.fired++
	return true
}

// apiOption installs the fault inside the SDK's retry loop, around the
// operation's deserializer, so a lost answer is retried as a real one would
// be.
func (f *Fault) apiOption(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("testenv.Fault",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			operation, input := middleware.GetOperationName(ctx), operationInput(ctx)
			if !f.LoseResponse && f.strike(operation, input) {
				return middleware.DeserializeOutput{}, middleware.Metadata{}, errors.New("injected failure")
			}
			out, md, err := next.HandleDeserialize(ctx, in)
			if err == nil && f.LoseResponse && f.strike(operation, input) {
				// A 503 after the write was applied: the SDK retries it.
				return out, md, &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
					Response: &smithyhttp.Response{Response: &http.Response{StatusCode: http.StatusServiceUnavailable}},
					Err:      errors.New("injected: the answer was lost"),
				}}
			}
			return out, md, err
		}), middleware.Before)
}

type inputKey struct{}

// operationInput is the operation's input, which the Initialize step of
// captureInput stored in the context.
func operationInput(ctx context.Context) any { return middleware.GetStackValue(ctx, inputKey{}) }

// captureInput lets the fault see the operation's input.
func captureInput(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("testenv.CaptureInput",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			return next.HandleInitialize(middleware.WithStackValue(ctx, inputKey{}, in.Parameters), in)
		}), middleware.Before)
}

// APIOptions install the fault on an SDK client (Match picks the request;
// the faults the tests use pick DynamoDB ones).
func (f *Fault) APIOptions() []func(*middleware.Stack) error {
	return []func(*middleware.Stack) error{captureInput, f.apiOption}
}
