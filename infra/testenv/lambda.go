package testenv

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go/middleware"

	"github.com/checkstack/satellite-backend/infra/gateway"
	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/shared/app"
)

// FanoutFunction is the name the tests' admin function starts fan-out
// tasks on, and the fan-out function hands on to: its logical id.
const FanoutFunction = "FanoutFunction"

// Lambda is the local stack's Lambda Invoke API (gateway.LambdaAPI) on a
// test server, running the fan-out function in this process: the admin
// function's asynchronous invocations are run, retried and (when asked)
// delivered twice as Lambda would.
type Lambda struct {
	URL string
	API *gateway.LambdaAPI

	mu      sync.Mutex
	refuse  int
	refused int
}

// RefuseInvocations makes the next n Invoke requests fail as Lambda does
// for a function that does not exist (404 ResourceNotFoundException, which
// is not retried).
func (l *Lambda) RefuseInvocations(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refuse = n
}

// Refused returns how many Invoke requests were refused.
func (l *Lambda) Refused() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refused
}

func (l *Lambda) serve(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	refuse := l.refuse > 0
	if refuse {
		l.refuse--
		l.refused++
	}
	l.mu.Unlock()
	if refuse {
		w.Header().Set("X-Amzn-ErrorType", "ResourceNotFoundException")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"Type":"User","message":"Function not found (refused by the test)"}`))
		return
	}
	l.API.ServeHTTP(w, r)
}

// lambda starts this Env's Lambda API once; App installs the fan-out
// function it builds in it.
func (e *Env) lambda(tb testing.TB) *Lambda {
	tb.Helper()
	if e.Lambda != nil {
		return e.Lambda
	}
	retries, age := e.Template.AsyncRetries(FanoutFunction)
	fn := gateway.LambdaFunction{LogicalID: FanoutFunction, Timeout: e.Template.Timeout(FanoutFunction), Retries: retries, MaxEventAge: age}
	l := &Lambda{API: gateway.NewLambdaAPI(gateway.LambdaConfig{
		Functions:     map[string]gateway.LambdaFunction{FanoutFunction: fn},
		RetryDelays:   []time.Duration{10 * time.Millisecond, 20 * time.Millisecond},
		DuplicateRate: e.AsyncDuplicateRate,
		Log:           Logger(tb),
	})}
	srv := httptest.NewServer(http.HandlerFunc(l.serve))
	tb.Cleanup(func() {
		l.API.Stop()
		srv.Close()
	})
	l.URL = srv.URL
	e.Lambda = l
	return l
}

// fanoutWorker builds the fan-out function as its own Lambda would run: its
// own clients, with its requests recorded in e.FanoutCalls.
func (e *Env) fanoutWorker(tb testing.TB, cfg app.Config, opts app.Options) {
	tb.Helper()
	e.FanoutCalls = &Calls{}
	wopts := app.Options{
		Now: opts.Now, Log: opts.Log, MetricsOutput: opts.MetricsOutput, Lifecycle: opts.Lifecycle,
		APIOptions: []func(*middleware.Stack) error{e.FanoutCalls.APIOption},
		Endpoints:  opts.Endpoints,
	}
	w, err := app.NewFanout(cfg, localaws.AWSConfig(), wopts)
	if err != nil {
		tb.Fatal(err)
	}
	e.Lambda.API.SetInvoker(gateway.NewInProcess(map[string]any{FanoutFunction: w.Handle}))
}
