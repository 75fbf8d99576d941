// Package wshandler adapts API Gateway WebSocket proxy events to the endpoint
// service: one handler per route ($connect, $default, $disconnect). It only
// translates events and maps outcomes to Lambda responses.
package wshandler

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/checkstack/satellite-backend/shared/awspartition"
	"github.com/checkstack/satellite-backend/shared/endpoint"
)

// Handler serves the three WebSocket routes.
type Handler struct {
	Service *endpoint.Service
	// ManagementURL, when set, overrides the Management API URL derived
	// from each event (used by the local stack).
	ManagementURL string
	// Region is the AWS region of the API, used to derive that URL.
	Region string
}

// ManagementURL returns the Management API base URL for the API and
// stage that sent the event:
// https://{apiId}.execute-api.{region}.{partition DNS suffix}/{stage}
// (amazonaws.com.cn in the China regions). The execute-api host is used
// rather than domainName so that pushes keep working behind a custom domain.
func ManagementURL(rc events.APIGatewayWebsocketProxyRequestContext, region string) string {
	return fmt.Sprintf("https://%s.execute-api.%s.%s/%s", rc.APIID, region, awspartition.DNSSuffix(region), rc.Stage)
}

func (h *Handler) conn(req events.APIGatewayWebsocketProxyRequest) endpoint.Conn {
	mgmt := h.ManagementURL
	if mgmt == "" {
		mgmt = ManagementURL(req.RequestContext, h.Region)
	}
	c := endpoint.Conn{ID: req.RequestContext.ConnectionID, ManagementURL: mgmt, RequestID: requestID(req.RequestContext)}
	if ms := req.RequestContext.RequestTimeEpoch; ms > 0 {
		c.ReceivedAt = time.UnixMilli(ms).UTC()
	}
	if ms := req.RequestContext.ConnectedAt; ms > 0 {
		c.ConnectedAt = time.UnixMilli(ms).UTC()
	}
	return c
}

func requestID(rc events.APIGatewayWebsocketProxyRequestContext) string {
	if rc.RequestID != "" {
		return rc.RequestID
	}
	if s, ok := rc.MessageID.(string); ok {
		return s
	}
	return ""
}

// respond maps an outcome to the Lambda response: the one place where errors
// become responses. For $connect a non-2xx status refuses the handshake; for
// $default a returned error makes API Gateway answer the client with its
// "Internal server error" frame, which is right only for backend failures
// (client errors never reach here: the service answers them itself).
func respond(err error) (events.APIGatewayProxyResponse, error) {
	if err != nil {
		return events.APIGatewayProxyResponse{StatusCode: http.StatusInternalServerError}, err
	}
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, nil
}

// Connect handles $connect.
func (h *Handler) Connect(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	defer h.Service.Metrics.Flush()
	c := h.conn(req)
	c.Client = clientOf(req)
	return respond(h.Service.Connect(ctx, c))
}

// Message handles $default: every satellite frame.
func (h *Handler) Message(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	defer h.Service.Metrics.Flush()
	frame := []byte(req.Body)
	if req.IsBase64Encoded {
		decoded, err := base64.StdEncoding.DecodeString(req.Body)
		if err != nil {
			// Not a frame the satellite could have sent; treat as unparseable.
			decoded = nil
		}
		frame = decoded
	}
	return respond(h.Service.Receive(ctx, h.conn(req), frame))
}

// Disconnect handles $disconnect.
func (h *Handler) Disconnect(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	defer h.Service.Metrics.Flush()
	c := h.conn(req)
	c.Close.Code = int(req.RequestContext.DisconnectStatusCode)
	if r := req.RequestContext.DisconnectReason; r != nil {
		c.Close.Reason = *r
	}
	return respond(h.Service.Disconnect(ctx, c))
}
