package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/checkstack/satellite-backend/infra/lambdarie"
)

// Invoker runs a function of the template with a JSON event and returns its
// JSON response. A function that fails (returns an error, panics, times out)
// yields a *FunctionError.
type Invoker interface {
	Invoke(ctx context.Context, function string, payload []byte) ([]byte, error)
}

// FunctionError is a failed invocation.
type FunctionError struct {
	Function string
	Type     string
	Message  string
}

func (e *FunctionError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.Function, e.Type, e.Message)
}

// InProcessInstance is an instance of a Go handler running in this process
// through aws-lambda-go's handler adapter, so events and responses cross
// the same JSON boundary as on Lambda.
type InProcessInstance struct {
	function string
	handler  lambda.Handler
}

// NewInProcessInstance wraps handler (anything lambda.Start accepts) as an
// instance of function. Its memory is whatever handler closes over: build
// the handler with the function's constructor for each instance so that
// instances share nothing, as on Lambda.
func NewInProcessInstance(function string, handler any) *InProcessInstance {
	return &InProcessInstance{function: function, handler: lambda.NewHandler(handler)}
}

// Invoke implements Instance. The handler runs in its own goroutine so a
// timeout answers even when the handler ignores its context.
func (i *InProcessInstance) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- result{err: &FunctionError{Function: i.function, Type: "Runtime.Panic", Message: fmt.Sprint(r)}}
			}
		}()
		out, err := i.handler.Invoke(ctx, payload)
		// The adapter reuses its response buffer.
		done <- result{bytes.Clone(out), err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			var fe *FunctionError
			if errors.As(r.err, &fe) {
				return nil, fe
			}
			return nil, &FunctionError{Function: i.function, Type: fmt.Sprintf("%T", r.err), Message: r.err.Error()}
		}
		return r.out, nil
	case <-ctx.Done():
		return nil, &FunctionError{Function: i.function, Type: "Sandbox.Timedout", Message: "Task timed out"}
	}
}

// Close implements Instance.
func (i *InProcessInstance) Close() {}

// NewInProcess returns an invoker over handlers keyed by function logical id
// (each value anything lambda.Start accepts) whose instances all share the
// one handler value: for tests of the gateway itself. The local stack
// builds every instance with the function's own constructor instead.
func NewInProcess(handlers map[string]any) *Instances {
	starts := map[string]StartInstance{}
	for fn, h := range handlers {
		starts[fn] = func(context.Context, string) (Instance, error) { return NewInProcessInstance(fn, h), nil }
	}
	return NewInstances(InstanceConfig{Max: 1 << 10}, starts)
}

// RIEInstance is an instance that is a built bootstrap under its own
// aws-lambda-rie process.
type RIEInstance struct {
	function string
	emulator *lambdarie.Emulator
}

// NewRIEInstance wraps a running emulator as an instance of function; Close
// stops it.
func NewRIEInstance(function string, e *lambdarie.Emulator) *RIEInstance {
	return &RIEInstance{function: function, emulator: e}
}

// Invoke implements Instance.
func (r *RIEInstance) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	out, err := r.emulator.Invoke(ctx, payload)
	var fe *lambdarie.FunctionError
	if errors.As(err, &fe) {
		return nil, &FunctionError{Function: r.function, Type: fe.Type, Message: fe.Message}
	}
	if err != nil {
		return nil, &FunctionError{Function: r.function, Type: "Invoke", Message: err.Error()}
	}
	return out, nil
}

// Close implements Instance.
func (r *RIEInstance) Close() { r.emulator.Stop() }

// LambdaEndpoint invokes functions through a Lambda Invoke API endpoint such
// as `sam local start-lambda` (FunctionName = the template's logical id).
type LambdaEndpoint struct {
	URL    string
	Client *http.Client
	// Serialize makes calls one at a time per function, for endpoints that
	// cannot run two at once.
	Serialize bool
	mu        sync.Mutex
	locks     map[string]*sync.Mutex
}

// Invoke implements Invoker.
func (l *LambdaEndpoint) Invoke(ctx context.Context, function string, payload []byte) ([]byte, error) {
	if l.Serialize {
		l.mu.Lock()
		if l.locks == nil {
			l.locks = map[string]*sync.Mutex{}
		}
		m, ok := l.locks[function]
		if !ok {
			m = &sync.Mutex{}
			l.locks[function] = m
		}
		l.mu.Unlock()
		m.Lock()
		defer m.Unlock()
	}
	url := strings.TrimRight(l.URL, "/") + "/2015-03-31/functions/" + function + "/invocations"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	client := l.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, &FunctionError{Function: function, Type: "Invoke", Message: err.Error()}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var fe struct {
		Type    string `json:"errorType"`
		Message string `json:"errorMessage"`
	}
	switch {
	case resp.StatusCode != http.StatusOK:
		return nil, &FunctionError{Function: function, Type: fmt.Sprintf("HTTP%d", resp.StatusCode), Message: string(body)}
	case resp.Header.Get("X-Amz-Function-Error") != "":
		_ = json.Unmarshal(body, &fe)
		return nil, &FunctionError{Function: function, Type: fe.Type, Message: fe.Message}
	case json.Unmarshal(body, &fe) == nil && fe.Type != "":
		return nil, &FunctionError{Function: function, Type: fe.Type, Message: fe.Message}
	case !json.Valid(body):
		return nil, &FunctionError{Function: function, Type: "Runtime.Unknown", Message: string(body)}
	}
	return body, nil
}
