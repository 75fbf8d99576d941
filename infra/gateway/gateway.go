package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"
)

// API Gateway's WebSocket limits.
const (
	MaxMessageBytes           = 128 * 1024
	DefaultIdleTimeout        = 10 * time.Minute
	DefaultMaxDuration        = 2 * time.Hour
	DefaultIntegrationTimeout = 29 * time.Second
)

// Config configures a Gateway.
type Config struct {
	API *API
	// HTTPAPI, when set, is served on the same listener (payload 2.0).
	HTTPAPI *HTTPAPI
	Invoker Invoker
	// Schedules run on their rate while the gateway serves; nil runs none.
	Schedules []Schedule
	// ScheduleEvery, when set, replaces every schedule's interval (tests).
	ScheduleEvery time.Duration
	// IdleTimeout, MaxDuration and IntegrationTimeout default to API
	// Gateway's 10 min, 2 h and 29 s.
	IdleTimeout        time.Duration
	MaxDuration        time.Duration
	IntegrationTimeout time.Duration
	// APIID names the API in events; random when empty.
	APIID  string
	Region string
	Log    *slog.Logger
	// Now is the clock for event timestamps; time.Now when nil.
	Now func() time.Time
	// OnInvoke, when set, is told about every finished route invocation
	// (load tests measure with it).
	OnInvoke func(Invocation)
	// MaxInFlight bounds the frames of one connection being handled at once
	// (DefaultMaxInFlight when zero). Beyond it the gateway stops reading the
	// socket until one finishes, so a client that pipelines thousands of
	// frames is slowed by TCP flow control instead of exhausting this
	// machine. API Gateway scales out instead; locally one process serves
	// every function.
	MaxInFlight int
}

// DefaultMaxInFlight is the local gateway's bound on frames of one
// connection handled at once.
const DefaultMaxInFlight = 8

// Invocation describes one finished route invocation.
type Invocation struct {
	ConnectionID string
	Route        string
	Started      time.Time // when the frame or handshake arrived
	Duration     time.Duration
	Err          error
}

// Gateway serves WebSocket clients and the Management API on one listener.
type Gateway struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	conns   map[string]*connection
	host    string
	closing bool

	wg       sync.WaitGroup // connections and in-flight invocations
	stopOnce sync.Once
	stop     chan struct{}
}

// New returns a Gateway; Serve runs it.
func New(cfg Config) *Gateway {
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxDuration == 0 {
		cfg.MaxDuration = DefaultMaxDuration
	}
	if cfg.IntegrationTimeout == 0 {
		cfg.IntegrationTimeout = DefaultIntegrationTimeout
	}
	if cfg.APIID == "" {
		cfg.APIID = newAPIID()
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Gateway{cfg: cfg, log: cfg.Log, conns: map[string]*connection{}, stop: make(chan struct{})}
}

// Start serves on l in the background; URL and ManagementURL are valid when
// it returns. Errors of the server after that are logged.
func (g *Gateway) Start(l net.Listener) {
	g.setHost(l)
	go func() {
		if err := g.Serve(l); err != nil {
			g.log.Error("gateway stopped", "error", err.Error())
		}
	}()
}

func (g *Gateway) setHost(l net.Listener) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.host = l.Addr().String()
}

// Serve accepts connections on l until Shutdown. It starts the schedules.
func (g *Gateway) Serve(l net.Listener) error {
	g.setHost(l)
	g.mu.Lock()
	if !g.closing {
		for _, s := range g.cfg.Schedules {
			g.wg.Add(1)
			go g.runSchedule(s)
		}
	}
	g.mu.Unlock()
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-g.stop
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown closes every connection with 1001 Going away (each gets its
// $disconnect), stops the schedules and waits for in-flight invocations.
func (g *Gateway) Shutdown() {
	g.stopOnce.Do(func() { close(g.stop) })
	g.mu.Lock()
	g.closing = true
	conns := make([]*connection, 0, len(g.conns))
	for _, c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		c.close(websocket.StatusGoingAway, "Going away")
	}
	g.wg.Wait()
}

// URL is the ws:// URL clients connect to.
func (g *Gateway) URL() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return "ws://" + g.host + "/" + g.cfg.API.Stage
}

// ManagementURL is the Management API base URL (https://host/stage on AWS).
func (g *Gateway) ManagementURL() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return "http://" + g.host + "/" + g.cfg.API.Stage
}

// Connections returns the number of open connections.
func (g *Gateway) Connections() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id, ok := g.managementPath(r); ok {
		g.serveManagement(w, r, id)
		return
	}
	if r.URL.Path != "/"+g.cfg.API.Stage {
		if g.serveHTTPAPI(w, r) {
			return
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		writeJSON(w, http.StatusUpgradeRequired, map[string]string{"message": "Expected a WebSocket upgrade"})
		return
	}
	g.serveWebSocket(w, r)
}

// managementPath recognises /@connections/{id} and /{stage}/@connections/{id}.
func (g *Gateway) managementPath(r *http.Request) (string, bool) {
	p := r.URL.EscapedPath()
	p = strings.TrimPrefix(p, "/"+g.cfg.API.Stage)
	rest, ok := strings.CutPrefix(p, "/@connections/")
	if !ok {
		rest, ok = strings.CutPrefix(p, "/%40connections/")
	}
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return "", false
	}
	id, err := url.PathUnescape(rest)
	return id, err == nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// requestContext fills the request context every WebSocket event carries.
func (g *Gateway) requestContext(c *connection, route, eventType string, at time.Time) events.APIGatewayWebsocketProxyRequestContext {
	id := newID()
	g.mu.Lock()
	host := g.host
	g.mu.Unlock()
	domain, _, _ := net.SplitHostPort(host)
	return events.APIGatewayWebsocketProxyRequestContext{
		RouteKey:          route,
		EventType:         eventType,
		ExtendedRequestID: id,
		RequestID:         id,
		RequestTime:       at.UTC().Format("02/Jan/2006:15:04:05 -0700"),
		RequestTimeEpoch:  at.UnixMilli(),
		MessageDirection:  "IN",
		Stage:             g.cfg.API.Stage,
		ConnectedAt:       c.connectedAt.UnixMilli(),
		Identity:          events.APIGatewayRequestIdentity{SourceIP: c.sourceIP, UserAgent: c.userAgent},
		DomainName:        domain,
		ConnectionID:      c.id,
		APIID:             g.cfg.APIID,
	}
}

// invoke runs a route's function with an event and returns its response.
func (g *Gateway) invoke(ctx context.Context, c *connection, route string, ev events.APIGatewayWebsocketProxyRequest, started time.Time) (events.APIGatewayProxyResponse, error) {
	r, ok := g.cfg.API.Routes[route]
	if !ok {
		return events.APIGatewayProxyResponse{}, errNoRoute
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.IntegrationTimeout)
	defer cancel()
	out, err := g.cfg.Invoker.Invoke(ctx, r.Function, payload)
	var resp events.APIGatewayProxyResponse
	if err == nil && len(out) > 0 && string(out) != "null" {
		if jerr := json.Unmarshal(out, &resp); jerr != nil {
			err = &FunctionError{Function: r.Function, Type: "Response", Message: "response is not an API Gateway proxy response"}
		}
	}
	if g.cfg.OnInvoke != nil {
		g.cfg.OnInvoke(Invocation{ConnectionID: c.id, Route: route, Started: started, Duration: time.Since(started), Err: err})
	}
	if err != nil {
		g.log.Warn("integration failed", "route", route, "connectionId", c.id, "requestId", ev.RequestContext.RequestID, "error", err.Error())
	}
	return resp, err
}

var errNoRoute = errors.New("no route")

// selectRoute evaluates $request.body.<path> on a frame; a frame that is not
// a JSON object, or whose value names no route, goes to $default.
func (g *Gateway) selectRoute(frame []byte) string {
	path := strings.Split(strings.TrimPrefix(g.cfg.API.RouteSelectionExpression, "$request.body."), ".")
	var v any
	if json.Unmarshal(frame, &v) == nil {
		for _, p := range path {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[p]
		}
		if key, ok := v.(string); ok {
			if _, ok := g.cfg.API.Routes[key]; ok && !strings.HasPrefix(key, "$") {
				return key
			}
		}
	}
	return "$default"
}

func (g *Gateway) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	now := g.cfg.Now()
	c := &connection{
		g:           g,
		id:          newID(),
		connectedAt: now,
		sourceIP:    sourceIP(r),
		userAgent:   r.UserAgent(),
	}
	c.lastActive.Store(now.UnixNano())
	ev := events.APIGatewayWebsocketProxyRequest{
		Headers:                         map[string]string{},
		MultiValueHeaders:               map[string][]string{},
		QueryStringParameters:           map[string]string{},
		MultiValueQueryStringParameters: map[string][]string{},
		RequestContext:                  g.requestContext(c, "$connect", "CONNECT", now),
	}
	for k, vs := range r.Header {
		ev.Headers[k] = strings.Join(vs, ",")
		ev.MultiValueHeaders[k] = vs
	}
	ev.Headers["Host"], ev.MultiValueHeaders["Host"] = r.Host, []string{r.Host}
	for k, vs := range r.URL.Query() {
		ev.QueryStringParameters[k] = vs[len(vs)-1]
		ev.MultiValueQueryStringParameters[k] = vs
	}
	if len(ev.QueryStringParameters) == 0 {
		ev.QueryStringParameters, ev.MultiValueQueryStringParameters = nil, nil
	}
	if _, ok := g.cfg.API.Routes["$connect"]; ok {
		resp, err := g.invoke(r.Context(), c, "$connect", ev, now)
		switch {
		case err != nil:
			writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "Internal server error"})
			return
		case resp.StatusCode < 200 || resp.StatusCode > 299:
			status := resp.StatusCode
			if status == 0 {
				status = http.StatusInternalServerError
			}
			w.WriteHeader(status)
			return
		}
	}
	// Register before the handshake answer goes out: a client may be posted
	// to the moment it sees 101. Posts wait until the socket is ready.
	c.ready = make(chan struct{})
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"message": "Going away"})
		return
	}
	g.conns[c.id] = c
	g.wg.Add(1)
	g.mu.Unlock()
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		g.remove(c)
		close(c.ready)
		g.wg.Done()
		g.log.Warn("handshake failed", "connectionId", c.id, "error", err.Error())
		g.disconnect(c, int(websocket.StatusAbnormalClosure), "Handshake failed")
		return
	}
	ws.SetReadLimit(MaxMessageBytes)
	c.ws = ws
	close(c.ready)
	g.log.Info("connected", "connectionId", c.id, "sourceIp", c.sourceIP)
	go c.serve()
}

// disconnect runs $disconnect for a closed connection.
func (g *Gateway) disconnect(c *connection, status int, reason string) {
	if _, ok := g.cfg.API.Routes["$disconnect"]; !ok {
		return
	}
	now := g.cfg.Now()
	rc := g.requestContext(c, "$disconnect", "DISCONNECT", now)
	rc.DisconnectStatusCode = int64(status)
	rc.DisconnectReason = &reason
	_, _ = g.invoke(context.Background(), c, "$disconnect", events.APIGatewayWebsocketProxyRequest{RequestContext: rc}, now)
	g.log.Info("disconnected", "connectionId", c.id, "status", status, "reason", reason)
}

// handleFrame invokes the route a frame selects. Like API Gateway, frames of
// one connection are handled concurrently; a failed integration answers the
// client with API Gateway's error frame and keeps the connection.
func (g *Gateway) handleFrame(c *connection, typ websocket.MessageType, data []byte, at time.Time) {
	defer g.wg.Done()
	route := g.selectRoute(data)
	rc := g.requestContext(c, route, "MESSAGE", at)
	rc.MessageID = newID()
	ev := events.APIGatewayWebsocketProxyRequest{RequestContext: rc, Body: string(data)}
	if typ == websocket.MessageBinary || !utf8.Valid(data) {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(data), true
	}
	_, err := g.invoke(context.Background(), c, route, ev, at)
	switch {
	case errors.Is(err, errNoRoute):
		c.send(errorFrame("Forbidden", c.id, rc.RequestID))
	case err != nil:
		c.send(errorFrame("Internal server error", c.id, rc.RequestID))
	}
}

func errorFrame(message, connectionID, requestID string) []byte {
	b, _ := json.Marshal(map[string]string{"message": message, "connectionId": connectionID, "requestId": requestID})
	return b
}

func (g *Gateway) connection(id string) (*connection, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.conns[id]
	return c, ok
}

func (g *Gateway) remove(c *connection) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.conns, c.id)
}

// managementError answers like the Management API: the error type in
// x-amzn-ErrorType, which the AWS SDK turns into its typed errors.
func managementError(w http.ResponseWriter, status int, errorType string) {
	w.Header().Set("X-Amzn-ErrorType", errorType)
	writeJSON(w, status, map[string]any{"message": nil})
}

func (g *Gateway) serveManagement(w http.ResponseWriter, r *http.Request, id string) {
	switch r.Method {
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxMessageBytes+1))
		if err != nil {
			managementError(w, http.StatusBadRequest, "BadRequestException")
			return
		}
		if len(body) > MaxMessageBytes {
			managementError(w, http.StatusRequestEntityTooLarge, "PayloadTooLargeException")
			return
		}
		c, ok := g.connection(id)
		if !ok || !c.send(body) {
			managementError(w, http.StatusGone, "GoneException")
			return
		}
		c.touch()
		w.WriteHeader(http.StatusOK)
	case http.MethodGet:
		c, ok := g.connection(id)
		if !ok {
			managementError(w, http.StatusGone, "GoneException")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"connectedAt":  c.connectedAt.UTC().Format(time.RFC3339Nano),
			"lastActiveAt": time.Unix(0, c.lastActive.Load()).UTC().Format(time.RFC3339Nano),
			"identity":     map[string]string{"sourceIp": c.sourceIP, "userAgent": c.userAgent},
		})
	case http.MethodDelete:
		c, ok := g.connection(id)
		if !ok {
			managementError(w, http.StatusGone, "GoneException")
			return
		}
		c.close(websocket.StatusNormalClosure, "")
		w.WriteHeader(http.StatusNoContent)
	default:
		managementError(w, http.StatusMethodNotAllowed, "BadRequestException")
	}
}
