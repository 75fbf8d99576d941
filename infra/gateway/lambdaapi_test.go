package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/checkstack/satellite-backend/infra/gateway"
	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/lambdainvoke"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// lambdaTemplate has a function named by the stack, one with no retries
// and a short event age, and one with Lambda's defaults.
const lambdaTemplate = `
Globals:
  Function: {Timeout: 10}
Resources:
  WorkFn:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "${AWS::StackName}-work"
      Timeout: 60
      EventInvokeConfig: {MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 3600}
  OnceFn:
    Type: AWS::Serverless::Function
    Properties:
      EventInvokeConfig: {MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60}
  PlainFn: {Type: AWS::Serverless::Function, Properties: {}}
`

// attempts is a function that fails its first fail invocations of each
// event, and records every run.
type attempts struct {
	mu   sync.Mutex
	fail int
	runs map[string]int
	// deadline is the context deadline the last run had.
	deadline time.Duration
}

func (a *attempts) handle(ctx context.Context, ev map[string]any) (map[string]any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id := fmt.Sprint(ev["id"])
	a.runs[id]++
	if d, ok := ctx.Deadline(); ok {
		a.deadline = time.Until(d).Round(time.Second)
	}
	if a.runs[id] <= a.fail {
		return nil, errors.New("not yet")
	}
	return map[string]any{"echo": id}, nil
}

func (a *attempts) count(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.runs[id]
}

type lambdaFixture struct {
	url  string
	api  *gateway.LambdaAPI
	work *attempts
	once *attempts
}

// startLambda serves the Lambda API of lambdaTemplate on a gateway, with
// the functions' names, timeouts and retries read from the template as the
// local stack reads them.
func startLambda(t *testing.T, duplicates float64) *lambdaFixture {
	t.Helper()
	tpl, err := samtemplate.Parse([]byte(lambdaTemplate))
	if err != nil {
		t.Fatal(err)
	}
	f := &lambdaFixture{work: &attempts{fail: 2, runs: map[string]int{}}, once: &attempts{fail: 5, runs: map[string]int{}}}
	plain := &attempts{runs: map[string]int{}}
	functions := map[string]gateway.LambdaFunction{}
	for _, fn := range []string{"WorkFn", "OnceFn", "PlainFn"} {
		name, err := tpl.FunctionName(fn, map[string]string{"AWS::StackName": "local"})
		if err != nil {
			t.Fatal(err)
		}
		retries, age := tpl.AsyncRetries(fn)
		lf := gateway.LambdaFunction{LogicalID: fn, Timeout: tpl.Timeout(fn), Retries: retries, MaxEventAge: age}
		functions[fn], functions[name] = lf, lf
	}
	f.api = gateway.NewLambdaAPI(gateway.LambdaConfig{
		Invoker:   gateway.NewInProcess(map[string]any{"WorkFn": f.work.handle, "OnceFn": f.once.handle, "PlainFn": plain.handle}),
		Functions: functions, RetryDelays: []time.Duration{5 * time.Millisecond, 10 * time.Millisecond}, DuplicateRate: duplicates,
	})
	gw := gateway.New(gateway.Config{API: &gateway.API{Stage: "prod"}, Lambda: f.api})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gw.Start(l)
	t.Cleanup(gw.Shutdown)
	f.url = "http://" + l.Addr().String()
	return f
}

func (f *lambdaFixture) invoke(t *testing.T, function, invocationType string, payload string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.url+"/2015-03-31/functions/"+function+"/invocations", strings.NewReader(payload))
	if invocationType != "" {
		req.Header.Set("X-Amz-Invocation-Type", invocationType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

// TestAsynchronousInvocationsAreRetriedAsLambdaDoes: an Event invocation is
// accepted at once and run later; a failed run is retried as often as the
// function's EventInvokeConfig says, then dropped.
func TestAsynchronousInvocationsAreRetriedAsLambdaDoes(t *testing.T) {
	f := startLambda(t, 0)
	// By the name the function deploys under (the template's !Sub).
	if resp, _ := f.invoke(t, "local-work", "Event", `{"id":"a"}`); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Event invocation: %d, want 202", resp.StatusCode)
	}
	testenv.Eventually(t, "the event run three times", func() bool { return f.api.Stats().Runs == 3 })
	if n := f.work.count("a"); n != 3 {
		t.Errorf("WorkFn ran %d times, want 1 + 2 retries (it fails twice)", n)
	}
	if f.work.deadline != time.Minute {
		t.Errorf("WorkFn's context deadline was %v away, want its Timeout of 60s", f.work.deadline)
	}
	// A function with no retries runs once, and its event is dropped.
	if resp, _ := f.invoke(t, "arn:aws:lambda:us-east-1:123456789012:function:OnceFn", "Event", `{"id":"b"}`); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Event invocation by ARN: %d", resp.StatusCode)
	}
	testenv.Eventually(t, "the failed event dropped", func() bool { return f.api.Stats().Dropped == 1 })
	if n := f.once.count("b"); n != 1 {
		t.Errorf("OnceFn ran %d times, want once (MaximumRetryAttempts 0)", n)
	}
	if st := f.api.Stats(); st.Accepted != 2 || st.Runs != 4 || st.Retried != 2 || st.Failed != 3 || st.Duplicated != 0 {
		t.Errorf("stats = %+v", st)
	}
}

// TestAsynchronousEventsCanArriveTwice: Lambda delivers an event at least
// once; with DuplicateRate 1 every event runs twice.
func TestAsynchronousEventsCanArriveTwice(t *testing.T) {
	f := startLambda(t, 1)
	f.work.fail = 0
	for _, id := range []string{"x", "y"} {
		f.invoke(t, "WorkFn", "Event", `{"id":"`+id+`"}`)
	}
	testenv.Eventually(t, "every event delivered twice", func() bool { return f.api.Stats().Runs == 4 })
	if f.work.count("x") != 2 || f.work.count("y") != 2 {
		t.Errorf("runs x %d, y %d; want 2 each", f.work.count("x"), f.work.count("y"))
	}
}

func TestSynchronousInvocationsAndErrors(t *testing.T) {
	f := startLambda(t, 0)
	f.work.fail = 1
	resp, out := f.invoke(t, "WorkFn", "", `{"id":"s"}`)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "Unhandled" || out["errorMessage"] != "not yet" {
		t.Errorf("failing RequestResponse: %d %v %v", resp.StatusCode, resp.Header, out)
	}
	if resp, out := f.invoke(t, "WorkFn", "RequestResponse", `{"id":"s"}`); resp.StatusCode != http.StatusOK || out["echo"] != "s" {
		t.Errorf("RequestResponse: %d %v", resp.StatusCode, out)
	}
	if resp, _ := f.invoke(t, "WorkFn", "DryRun", `{}`); resp.StatusCode != http.StatusNoContent {
		t.Errorf("DryRun: %d", resp.StatusCode)
	}
	for _, tc := range []struct {
		function, invocation, payload string
		status                        int
		errorType                     string
	}{
		{"NoSuchFn", "Event", `{}`, http.StatusNotFound, "ResourceNotFoundException"},
		{"WorkFn", "Event", `not json`, http.StatusBadRequest, "InvalidRequestContentException"},
		{"WorkFn", "Event", `{"big":"` + strings.Repeat("x", gateway.MaxAsyncPayloadBytes) + `"}`, http.StatusRequestEntityTooLarge, "RequestEntityTooLargeException"},
		{"WorkFn", "Sometimes", `{}`, http.StatusBadRequest, "InvalidParameterValueException"},
	} {
		resp, _ := f.invoke(t, tc.function, tc.invocation, tc.payload)
		if resp.StatusCode != tc.status || resp.Header.Get("X-Amzn-ErrorType") != tc.errorType {
			t.Errorf("%s %s: %d %s, want %d %s", tc.function, tc.invocation, resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), tc.status, tc.errorType)
		}
	}
	if st := f.api.Stats(); st.Accepted != 0 {
		t.Errorf("refused events were accepted: %+v", st)
	}
}

// TestLambdaAdapterAgainstTheLocalAPI: the backend's adapter (the SDK's
// Lambda client) queues events on the local Lambda API, and gets a clear
// error for a function that does not exist or an event over the limit.
func TestLambdaAdapterAgainstTheLocalAPI(t *testing.T) {
	f := startLambda(t, 0)
	f.work.fail = 0
	client := lambdainvoke.New(lambda.NewFromConfig(localaws.AWSConfig(), func(o *lambda.Options) { o.BaseEndpoint = aws.String(f.url) }))
	queue := &lambdainvoke.Queue{Client: client, Function: "local-work"}
	if err := queue.EnqueueFanout(context.Background(), satellite.FanoutTask{JobID: "job-1", Segment: 3}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the task run", func() bool { return f.api.Stats().Runs == 1 })
	err := client.InvokeAsync(context.Background(), "missing-fn", []byte(`{}`))
	if satellite.ErrorCode(err) != satellite.EINTERNAL || !strings.Contains(satellite.ErrorMessage(err), "404 ResourceNotFoundException") {
		t.Errorf("invoking a missing function: %v", err)
	}
	big := bytes.Repeat([]byte("x"), lambdainvoke.MaxEventBytes+1)
	if err := client.InvokeAsync(context.Background(), "local-work", big); satellite.ErrorCode(err) != satellite.ETOOLARGE {
		t.Errorf("an event over the limit: %v, want ETOOLARGE before sending", err)
	}
}
