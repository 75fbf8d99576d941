package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	mgmttypes "github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/coder/websocket"

	"github.com/checkstack/satellite-backend/infra/gateway"
	"github.com/checkstack/satellite-backend/infra/lambdarie"
	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/mgmtapi"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// testTemplate is a WebSocket API shaped like the project's, plus a custom
// route and a scheduled function, to exercise the gateway's reading of any
// template.
const testTemplate = `
Parameters:
  StageName: {Type: String, Default: dev}
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  ConnectFn: {Type: AWS::Serverless::Function, Properties: {}}
  DefaultFn: {Type: AWS::Serverless::Function, Properties: {}}
  EchoFn: {Type: AWS::Serverless::Function, Properties: {}}
  DisconnectFn: {Type: AWS::Serverless::Function, Properties: {}}
  TickFn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Every:
          Type: Schedule
          Properties: {Schedule: rate(1 minute)}
  ConnectInt: {Type: AWS::ApiGatewayV2::Integration, Properties: {ApiId: !Ref Api, IntegrationType: AWS_PROXY, IntegrationUri: !Sub "arn:aws:apigateway:r:lambda:path/2015-03-31/functions/${ConnectFn.Arn}/invocations"}}
  DefaultInt: {Type: AWS::ApiGatewayV2::Integration, Properties: {ApiId: !Ref Api, IntegrationType: AWS_PROXY, IntegrationUri: !Sub "arn:aws:apigateway:r:lambda:path/2015-03-31/functions/${DefaultFn.Arn}/invocations"}}
  EchoInt: {Type: AWS::ApiGatewayV2::Integration, Properties: {ApiId: !Ref Api, IntegrationType: AWS_PROXY, IntegrationUri: !Sub "arn:aws:apigateway:r:lambda:path/2015-03-31/functions/${EchoFn.Arn}/invocations"}}
  DisconnectInt: {Type: AWS::ApiGatewayV2::Integration, Properties: {ApiId: !Ref Api, IntegrationType: AWS_PROXY, IntegrationUri: !Sub "arn:aws:apigateway:r:lambda:path/2015-03-31/functions/${DisconnectFn.Arn}/invocations"}}
  ConnectRoute: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: !Ref Api, RouteKey: $connect, Target: !Sub "integrations/${ConnectInt}"}}
  DefaultRoute: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: !Ref Api, RouteKey: $default, Target: !Sub "integrations/${DefaultInt}"}}
  EchoRoute: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: !Ref Api, RouteKey: echo, Target: !Sub "integrations/${EchoInt}"}}
  DisconnectRoute: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: !Ref Api, RouteKey: $disconnect, Target: !Sub "integrations/${DisconnectInt}"}}
  Stage: {Type: AWS::ApiGatewayV2::Stage, Properties: {ApiId: !Ref Api, StageName: !Ref StageName}}
  Http:
    Type: AWS::Serverless::HttpApi
    Properties: {Auth: {DefaultAuthorizer: AWS_IAM}}
  ItemsFn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        List: {Type: HttpApi, Properties: {ApiId: !Ref Http, Method: GET, Path: /items}}
        Special: {Type: HttpApi, Properties: {ApiId: !Ref Http, Method: GET, Path: /items/special}}
        One: {Type: HttpApi, Properties: {ApiId: !Ref Http, Method: GET, Path: "/items/{itemId}"}}
        Create: {Type: HttpApi, Properties: {ApiId: !Ref Http, Method: POST, Path: /items}}
`

// recorder is the set of test functions behind the routes: it records every
// event and lets a test decide the $connect answer and $default behaviour.
type recorder struct {
	mu            sync.Mutex
	events        []events.APIGatewayWebsocketProxyRequest
	ticks         int
	connectStatus int
	disconnected  chan events.APIGatewayWebsocketProxyRequest
	// hold blocks "hold" frames until it is closed.
	hold chan struct{}
}

func (r *recorder) record(ev events.APIGatewayWebsocketProxyRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) byRoute(route string) []events.APIGatewayWebsocketProxyRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []events.APIGatewayWebsocketProxyRequest
	for _, e := range r.events {
		if e.RequestContext.RouteKey == route {
			out = append(out, e)
		}
	}
	return out
}

type fixture struct {
	gw  *gateway.Gateway
	rec *recorder
	url string
}

func start(t *testing.T, cfg gateway.Config) *fixture {
	t.Helper()
	tpl, err := samtemplate.Parse([]byte(testTemplate))
	if err != nil {
		t.Fatal(err)
	}
	api, err := gateway.LoadAPI(tpl)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{connectStatus: 200, disconnected: make(chan events.APIGatewayWebsocketProxyRequest, 16), hold: make(chan struct{})}
	handlers := map[string]any{
		"ConnectFn": func(ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			rec.record(ev)
			return events.APIGatewayProxyResponse{StatusCode: rec.connectStatus}, nil
		},
		"DefaultFn": func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			rec.record(ev)
			switch {
			case ev.Body == "fail":
				return events.APIGatewayProxyResponse{StatusCode: 500}, errors.New("handler failed")
			case ev.Body == "slow":
				select {
				case <-time.After(5 * time.Second):
				case <-ctx.Done():
				}
			case ev.Body == "hold":
				<-rec.hold
			}
			return events.APIGatewayProxyResponse{StatusCode: 200}, nil
		},
		"EchoFn": func(ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			rec.record(ev)
			return events.APIGatewayProxyResponse{StatusCode: 200}, nil
		},
		"DisconnectFn": func(ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			rec.record(ev)
			rec.disconnected <- ev
			return events.APIGatewayProxyResponse{StatusCode: 200}, nil
		},
		"ItemsFn": func(ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
			if ev.Body == "fail" {
				return events.APIGatewayV2HTTPResponse{}, errors.New("failed")
			}
			b, _ := json.Marshal(ev)
			return events.APIGatewayV2HTTPResponse{StatusCode: 201, Headers: map[string]string{"Content-Type": "application/json", "X-Route": ev.RouteKey}, Body: string(b)}, nil
		},
		"TickFn": func(ev events.CloudWatchEvent) error {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if ev.DetailType == "Scheduled Event" && ev.Source == "aws.events" {
				rec.ticks++
			}
			return nil
		},
	}
	cfg.API = api
	if cfg.HTTPAPI, err = gateway.LoadHTTPAPI(tpl); err != nil {
		t.Fatal(err)
	}
	cfg.Invoker = gateway.NewInProcess(handlers)
	gw := gateway.New(cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gw.Start(l)
	t.Cleanup(gw.Shutdown)
	return &fixture{gw: gw, rec: rec, url: gw.URL()}
}

func dial(t *testing.T, url string, header http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// drain reads a client socket in the background, as a real client does, so
// close handshakes complete; the returned channel yields the read error.
func drain(c *websocket.Conn) <-chan error {
	done := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				done <- err
				return
			}
		}
	}()
	return done
}

func read(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("frame %q is not JSON", data)
	}
	return m
}

func write(t *testing.T, c *websocket.Conn, s string) {
	t.Helper()
	if err := c.Write(context.Background(), websocket.MessageText, []byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func waitDisconnect(t *testing.T, f *fixture) events.APIGatewayWebsocketProxyRequest {
	t.Helper()
	select {
	case ev := <-f.rec.disconnected:
		return ev
	case <-time.After(15 * time.Second):
		t.Fatal("no $disconnect")
	}
	return events.APIGatewayWebsocketProxyRequest{}
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{15}=$`)

func TestLoadAPIFromTheProjectTemplate(t *testing.T) {
	root, _ := samtemplate.FindRepoRoot()
	tpl, err := samtemplate.Load(root + "/template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	api, err := gateway.LoadAPI(tpl)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"$connect": "ConnectFunction", "$default": "MessageFunction", "$disconnect": "DisconnectFunction"}
	if len(api.Routes) != len(want) || api.RouteSelectionExpression != "$request.body.type" || api.Stage != "prod" {
		t.Errorf("api = %+v", api)
	}
	for key, fn := range want {
		if api.Routes[key].Function != fn {
			t.Errorf("route %s -> %s, want %s", key, api.Routes[key].Function, fn)
		}
	}
}

func TestEventsCarryWhatAPIGatewayFills(t *testing.T) {
	f := start(t, gateway.Config{APIID: "abcde12345"})
	c := dial(t, f.url+"?tenant=acme", http.Header{"X-Satellite": {"v1"}, "User-Agent": {"sat/1.0"}})
	write(t, c, `{"type":"heartbeat"}`)
	testenv.Eventually(t, "$default", func() bool { return len(f.rec.byRoute("$default")) == 1 })
	_ = c.Close(websocket.StatusNormalClosure, "bye")
	disc := waitDisconnect(t, f)

	conn := f.rec.byRoute("$connect")[0]
	msg := f.rec.byRoute("$default")[0]
	id := conn.RequestContext.ConnectionID
	if !idPattern.MatchString(id) {
		t.Errorf("connectionId %q is not shaped like API Gateway's", id)
	}
	for _, ev := range []events.APIGatewayWebsocketProxyRequest{conn, msg, disc} {
		rc := ev.RequestContext
		if rc.ConnectionID != id || rc.Stage != "dev" || rc.APIID != "abcde12345" || rc.DomainName != "127.0.0.1" ||
			rc.ConnectedAt != conn.RequestContext.ConnectedAt || rc.RequestTimeEpoch < rc.ConnectedAt || rc.MessageDirection != "IN" ||
			!idPattern.MatchString(rc.RequestID) || rc.ExtendedRequestID != rc.RequestID || rc.Identity.SourceIP != "127.0.0.1" || rc.RequestTime == "" {
			t.Errorf("%s request context = %+v", rc.RouteKey, rc)
		}
	}
	if conn.RequestContext.EventType != "CONNECT" || conn.Headers["X-Satellite"] != "v1" || conn.QueryStringParameters["tenant"] != "acme" ||
		conn.RequestContext.Identity.UserAgent != "sat/1.0" || conn.MultiValueHeaders["X-Satellite"][0] != "v1" {
		t.Errorf("$connect event = %+v", conn)
	}
	if msg.RequestContext.EventType != "MESSAGE" || msg.Body != `{"type":"heartbeat"}` || msg.Headers != nil || msg.QueryStringParameters != nil ||
		msg.RequestContext.MessageID == nil || msg.IsBase64Encoded {
		t.Errorf("$default event = %+v", msg)
	}
	if disc.RequestContext.EventType != "DISCONNECT" || disc.RequestContext.DisconnectStatusCode != 1000 || *disc.RequestContext.DisconnectReason != "bye" || disc.Headers != nil {
		t.Errorf("$disconnect event = %+v", disc.RequestContext)
	}
	if a, b := conn.RequestContext.RequestID, msg.RequestContext.RequestID; a == b {
		t.Errorf("request ids repeat")
	}
}

func TestRouteSelection(t *testing.T) {
	f := start(t, gateway.Config{})
	c := dial(t, f.url, nil)
	for _, frame := range []string{`{"action":"echo"}`, `{"action":"unknown"}`, `not json`, `{"action":"$connect"}`} {
		write(t, c, frame)
	}
	write(t, c, string([]byte{0xff, 0xfe}))
	if err := c.Write(context.Background(), websocket.MessageBinary, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "frames", func() bool { return len(f.rec.byRoute("echo"))+len(f.rec.byRoute("$default")) == 6 })
	if got := f.rec.byRoute("echo"); len(got) != 1 || got[0].Body != `{"action":"echo"}` {
		t.Errorf("echo route got %v", got)
	}
	binary := 0
	for _, ev := range f.rec.byRoute("$default") {
		if ev.IsBase64Encoded {
			binary++
		}
	}
	if binary != 2 {
		t.Errorf("%d base64 events, want 2 (binary frame and invalid UTF-8)", binary)
	}
}

func TestHandshakeRejectedWithConnectStatus(t *testing.T) {
	f := start(t, gateway.Config{})
	for _, status := range []int{401, 403, 429} {
		f.rec.mu.Lock()
		f.rec.connectStatus = status
		f.rec.mu.Unlock()
		_, resp, err := websocket.Dial(context.Background(), f.url, nil)
		if err == nil || resp == nil || resp.StatusCode != status {
			t.Errorf("$connect %d: handshake err %v resp %v", status, err, resp)
		}
	}
	if n := len(f.rec.byRoute("$disconnect")); n != 0 {
		t.Errorf("%d $disconnect for refused handshakes", n)
	}
	if f.gw.Connections() != 0 {
		t.Errorf("refused connections are registered")
	}
	_, resp, _ := websocket.Dial(context.Background(), strings.Replace(f.url, "/dev", "/other", 1), nil)
	if resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("wrong stage: %v, want 404", resp)
	}
}

func TestFailedIntegrationAnswersLikeAPIGatewayAndKeepsSocket(t *testing.T) {
	f := start(t, gateway.Config{IntegrationTimeout: 200 * time.Millisecond})
	c := dial(t, f.url, nil)
	for _, body := range []string{"fail", "slow"} {
		write(t, c, body)
		got := read(t, c)
		id := f.rec.byRoute("$connect")[0].RequestContext.ConnectionID
		if got["message"] != "Internal server error" || got["connectionId"] != id || !idPattern.MatchString(got["requestId"].(string)) {
			t.Errorf("%s: frame %v", body, got)
		}
	}
	write(t, c, "ok")
	testenv.Eventually(t, "the socket to keep working", func() bool { return len(f.rec.byRoute("$default")) == 3 })
}

func TestOversizedMessageClosesWith1009(t *testing.T) {
	f := start(t, gateway.Config{})
	c := dial(t, f.url, nil)
	c.SetReadLimit(-1)
	_ = c.Write(context.Background(), websocket.MessageText, make([]byte, gateway.MaxMessageBytes+1))
	ev := waitDisconnect(t, f)
	if ev.RequestContext.DisconnectStatusCode != 1009 {
		t.Errorf("disconnect status %d, want 1009", ev.RequestContext.DisconnectStatusCode)
	}
	_, _, err := c.Read(context.Background())
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Errorf("client saw %v, want close 1009", err)
	}
	if n := len(f.rec.byRoute("$default")); n != 0 {
		t.Errorf("oversized frame reached $default")
	}
	// Exactly the limit is fine.
	c2 := dial(t, f.url, nil)
	write(t, c2, strings.Repeat("x", gateway.MaxMessageBytes))
	testenv.Eventually(t, "a message at the limit", func() bool { return len(f.rec.byRoute("$default")) == 1 })
}

func TestIdleTimeoutAndMaximumDuration(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		f := start(t, gateway.Config{IdleTimeout: 300 * time.Millisecond})
		c := dial(t, f.url, nil)
		closed := drain(c)
		ev := waitDisconnect(t, f)
		if ev.RequestContext.DisconnectStatusCode != 1001 {
			t.Errorf("idle close status %d, want 1001", ev.RequestContext.DisconnectStatusCode)
		}
		if err := <-closed; websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Errorf("client saw %v", err)
		}
	})
	t.Run("maximum duration despite activity", func(t *testing.T) {
		f := start(t, gateway.Config{MaxDuration: 500 * time.Millisecond})
		c := dial(t, f.url, nil)
		drain(c)
		done := make(chan struct{})
		go func() {
			for {
				select {
				case <-done:
					return
				case <-time.After(50 * time.Millisecond):
					_ = c.Write(context.Background(), websocket.MessageText, []byte("ping"))
				}
			}
		}()
		ev := waitDisconnect(t, f)
		close(done)
		if ev.RequestContext.DisconnectStatusCode != 1001 {
			t.Errorf("status %d, want 1001", ev.RequestContext.DisconnectStatusCode)
		}
	})
}

func TestAbruptCloseStillDisconnects(t *testing.T) {
	f := start(t, gateway.Config{})
	c := dial(t, f.url, nil)
	_ = c.CloseNow()
	ev := waitDisconnect(t, f)
	if ev.RequestContext.DisconnectStatusCode == 0 {
		t.Errorf("no status on an abrupt close")
	}
}

func TestManagementAPI(t *testing.T) {
	f := start(t, gateway.Config{})
	c := dial(t, f.url, nil)
	id := f.rec.byRoute("$connect")[0].RequestContext.ConnectionID
	mgmtURL := f.gw.ManagementURL()

	// The AWS SDK client works against it unchanged.
	client := apigatewaymanagementapi.NewFromConfig(localaws.AWSConfig(), func(o *apigatewaymanagementapi.Options) {
		o.BaseEndpoint = aws.String(mgmtURL)
	})
	ctx := context.Background()
	if _, err := client.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: &id, Data: []byte(`{"type":"shutdown"}`)}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c); got["type"] != "shutdown" {
		t.Errorf("client got %v", got)
	}
	info, err := client.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: &id})
	if err != nil || info.ConnectedAt == nil || info.LastActiveAt == nil || aws.ToString(info.Identity.SourceIp) != "127.0.0.1" {
		t.Errorf("GetConnection = %+v, %v", info, err)
	}

	// So does the functions' adapter over it.
	adapter := mgmtapi.New(client)
	if err := adapter.Post(ctx, mgmtURL, "unknownABCDEFG=", []byte("{}")); satellite.ErrorCode(err) != satellite.EGONE {
		t.Errorf("post to unknown id: %v, want EGONE (410)", err)
	}
	_, err = client.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: &id, Data: make([]byte, gateway.MaxMessageBytes+1)})
	if err == nil || !strings.Contains(err.Error(), "413") {
		t.Errorf("oversized post: %v, want 413", err)
	}
	// Root path works too (no stage), as with a custom domain mapping.
	resp, err := http.Post(strings.TrimSuffix(mgmtURL, "/dev")+"/@connections/"+id, "application/json", strings.NewReader(`{"n":1}`))
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("POST without stage: %v %v", resp, err)
	}
	_ = read(t, c)

	drain(c)
	if err := adapter.Close(ctx, mgmtURL, id); err != nil {
		t.Fatal(err)
	}
	ev := waitDisconnect(t, f)
	if ev.RequestContext.ConnectionID != id {
		t.Errorf("$disconnect for %s", ev.RequestContext.ConnectionID)
	}
	var gone *mgmttypes.GoneException
	if _, err := client.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: &id}); !errors.As(err, &gone) {
		t.Errorf("delete of a closed connection: %v, want GoneException", err)
	}
	if _, err := client.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: &id}); !errors.As(err, &gone) {
		t.Errorf("get of a closed connection: %v, want GoneException", err)
	}
	if err := adapter.Post(ctx, mgmtURL, id, []byte("{}")); satellite.ErrorCode(err) != satellite.EGONE {
		t.Errorf("post to a closed connection: %v, want EGONE", err)
	}
}

func TestScheduledFunctionsRun(t *testing.T) {
	tpl, _ := samtemplate.Parse([]byte(testTemplate))
	schedules, err := gateway.LoadSchedules(tpl)
	if err != nil || len(schedules) != 1 || schedules[0].Function != "TickFn" || schedules[0].Every != time.Minute {
		t.Fatalf("schedules = %+v, %v", schedules, err)
	}
	f := start(t, gateway.Config{Schedules: schedules, ScheduleEvery: 20 * time.Millisecond})
	testenv.Eventually(t, "two scheduled runs", func() bool {
		f.rec.mu.Lock()
		defer f.rec.mu.Unlock()
		return f.rec.ticks >= 2
	})
	for expr, want := range map[string]time.Duration{"rate(1 minute)": time.Minute, "rate(5 minutes)": 5 * time.Minute, "rate(2 hours)": 2 * time.Hour, "rate(1 day)": 24 * time.Hour} {
		if got, err := gateway.ParseRate(expr); err != nil || got != want {
			t.Errorf("ParseRate(%s) = %v, %v", expr, got, err)
		}
	}
	for _, bad := range []string{"rate(0 minutes)", "cron(0 12 * * ? *)", "rate(1 fortnight)"} {
		if _, err := gateway.ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%s) accepted", bad)
		}
	}
}

func TestShutdownDisconnectsEveryone(t *testing.T) {
	f := start(t, gateway.Config{})
	for i := 0; i < 3; i++ {
		drain(dial(t, f.url, nil))
	}
	testenv.Eventually(t, "three connections", func() bool { return f.gw.Connections() == 3 })
	f.gw.Shutdown()
	if got := len(f.rec.byRoute("$disconnect")); got != 3 {
		t.Errorf("%d $disconnect after shutdown, want 3", got)
	}
}

// TestLambdaEndpointInvoker drives a real Lambda Invoke endpoint (the
// runtime emulator serves the same API as `sam local start-lambda`, under
// the function name "function") and checks results and errors decode.
func TestLambdaEndpointInvoker(t *testing.T) {
	rie, err := lambdarie.Path()
	if err != nil {
		t.Fatal(err)
	}
	root, _ := samtemplate.FindRepoRoot()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", filepath.Join(dir, "bootstrap"), "./infra/gateway/testdata/echofn")
	build.Dir = root
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	e, err := lambdarie.Start(context.Background(), lambdarie.Options{RIE: rie, Bootstrap: filepath.Join(dir, "bootstrap")})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	inv := &gateway.LambdaEndpoint{URL: e.BaseURL(), Serialize: true}
	out, err := inv.Invoke(context.Background(), "function", []byte(`{"body":"hello"}`))
	if err != nil || !strings.Contains(string(out), `"statusCode":200`) || !strings.Contains(string(out), "hello") {
		t.Errorf("invoke = %s, %v", out, err)
	}
	_, err = inv.Invoke(context.Background(), "function", []byte(`{"body":"fail"}`))
	var fe *gateway.FunctionError
	if !errors.As(err, &fe) || !strings.Contains(fe.Message, "asked to fail") {
		t.Errorf("failing invoke: %v, want a FunctionError with the handler's message", err)
	}
}

func TestHTTPAPIRoutesWithPayload2Events(t *testing.T) {
	f := start(t, gateway.Config{APIID: "httpapi123"})
	base := strings.TrimSuffix(f.gw.ManagementURL(), "/dev")
	cases := []struct{ method, path, route string }{
		{"GET", "/items", "GET /items"},
		{"GET", "/items/special", "GET /items/special"},
		{"GET", "/items/42?x=1&x=2", "GET /items/{itemId}"},
		{"POST", "/items", "POST /items"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(`{"a":1}`))
		req.Header.Set("X-Custom", "yes")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var ev events.APIGatewayV2HTTPRequest
		_ = json.NewDecoder(resp.Body).Decode(&ev)
		resp.Body.Close()
		if resp.StatusCode != 201 || resp.Header.Get("X-Route") != c.route || ev.RouteKey != c.route || ev.Version != "2.0" {
			t.Errorf("%s %s: %d route %q event %+v", c.method, c.path, resp.StatusCode, resp.Header.Get("X-Route"), ev)
			continue
		}
		rc := ev.RequestContext
		if rc.HTTP.Method != c.method || rc.Stage != "$default" || rc.APIID != "httpapi123" || rc.RequestID == "" || rc.Authorizer == nil || rc.Authorizer.IAM == nil ||
			ev.Headers["x-custom"] != "yes" || ev.Body != `{"a":1}` {
			t.Errorf("%s %s: event %+v", c.method, c.path, ev)
		}
		if c.route == "GET /items/{itemId}" && (ev.PathParameters["itemId"] != "42" || ev.QueryStringParameters["x"] != "1,2" || ev.RawQueryString != "x=1&x=2") {
			t.Errorf("parameters: path %v query %v raw %q", ev.PathParameters, ev.QueryStringParameters, ev.RawQueryString)
		}
	}
	for _, c := range []struct {
		method, path, body string
		status             int
	}{{"DELETE", "/items", "", 404}, {"GET", "/nothing", "", 404}, {"POST", "/items", "fail", 500}} {
		req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.status)
		}
	}
}

// TestFramesOfOneConnectionAreBoundedInFlight checks the gateway handles at
// most MaxInFlight frames of a connection at once and reads the rest as
// slots free, so a pipelining client cannot exhaust the machine.
func TestFramesOfOneConnectionAreBoundedInFlight(t *testing.T) {
	f := start(t, gateway.Config{MaxInFlight: 3})
	c := dial(t, f.url, nil)
	for range 10 {
		if err := c.Write(context.Background(), websocket.MessageText, []byte("hold")); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, "3 frames in flight", func() bool { return len(f.rec.byRoute("$default")) >= 3 })
	time.Sleep(100 * time.Millisecond) // time for a fourth to start, were it allowed to
	if n := len(f.rec.byRoute("$default")); n != 3 {
		t.Fatalf("%d frames handled at once, want 3", n)
	}
	close(f.rec.hold)
	testenv.Eventually(t, "all 10 frames handled", func() bool { return len(f.rec.byRoute("$default")) == 10 })
}
