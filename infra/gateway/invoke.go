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

// InProcess invokes Go handlers in this process through aws-lambda-go's
// handler adapter, so events and responses cross the same JSON boundary as on
// Lambda.
type InProcess struct {
	// One pool of adapters per function: an adapter reuses its response
	// buffer, so like a Lambda instance it serves one invocation at a time,
	// and concurrent invocations get instances of their own.
	handlers map[string]*sync.Pool
}

// NewInProcess returns an invoker over handlers keyed by function logical id;
// each value is any handler lambda.Start accepts.
func NewInProcess(handlers map[string]any) *InProcess {
	p := &InProcess{handlers: map[string]*sync.Pool{}}
	for fn, h := range handlers {
		p.handlers[fn] = &sync.Pool{New: func() any { return lambda.NewHandler(h) }}
	}
	return p
}

// Invoke implements Invoker. The handler runs in its own goroutine so a
// timeout answers even when the handler ignores its context.
func (p *InProcess) Invoke(ctx context.Context, function string, payload []byte) ([]byte, error) {
	pool, ok := p.handlers[function]
	if !ok {
		return nil, &FunctionError{Function: function, Type: "ResourceNotFoundException", Message: "no in-process handler"}
	}
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- result{err: &FunctionError{Function: function, Type: "Runtime.Panic", Message: fmt.Sprint(r)}}
			}
		}()
		h := pool.Get().(lambda.Handler)
		out, err := h.Invoke(ctx, payload)
		out = bytes.Clone(out)
		pool.Put(h)
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			var fe *FunctionError
			if errors.As(r.err, &fe) {
				return nil, fe
			}
			return nil, &FunctionError{Function: function, Type: fmt.Sprintf("%T", r.err), Message: r.err.Error()}
		}
		return r.out, nil
	case <-ctx.Done():
		return nil, &FunctionError{Function: function, Type: "Sandbox.Timedout", Message: "Task timed out"}
	}
}

// RIE invokes built bootstraps, one aws-lambda-rie per function.
type RIE struct {
	emulators map[string]*lambdarie.Emulator
}

// NewRIE returns an invoker over running emulators keyed by function.
func NewRIE(emulators map[string]*lambdarie.Emulator) *RIE { return &RIE{emulators: emulators} }

// Invoke implements Invoker. Each emulator serves one invocation at a time;
// it queues the rest.
func (r *RIE) Invoke(ctx context.Context, function string, payload []byte) ([]byte, error) {
	e, ok := r.emulators[function]
	if !ok {
		return nil, &FunctionError{Function: function, Type: "ResourceNotFoundException", Message: "no emulator for function"}
	}
	out, err := e.Invoke(ctx, payload)
	var fe *lambdarie.FunctionError
	if errors.As(err, &fe) {
		return nil, &FunctionError{Function: function, Type: fe.Type, Message: fe.Message}
	}
	if err != nil {
		return nil, &FunctionError{Function: function, Type: "Invoke", Message: err.Error()}
	}
	return out, nil
}

// Stop stops every emulator.
func (r *RIE) Stop() {
	for _, e := range r.emulators {
		e.Stop()
	}
}

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
