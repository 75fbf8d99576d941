package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"
)

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
	d := &Dispatch{Connection: c.id}
	out, err := g.cfg.Invoker.Invoke(WithDispatch(ctx, d), r.Function, payload)
	var resp events.APIGatewayProxyResponse
	if err == nil && len(out) > 0 && string(out) != "null" {
		if jerr := json.Unmarshal(out, &resp); jerr != nil {
			err = &FunctionError{Function: r.Function, Type: "Response", Message: "response is not an API Gateway proxy response"}
		}
	}
	if g.cfg.OnInvoke != nil {
		g.cfg.OnInvoke(Invocation{ConnectionID: c.id, Route: route, Started: started, Duration: time.Since(started), Err: err, Instance: d.Instance, Cold: d.Cold, Order: d.Order})
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
