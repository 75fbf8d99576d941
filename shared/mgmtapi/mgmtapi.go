// Package mgmtapi is the adapter of satellite.ConnectionAPI over the API
// Gateway Management API (@connections): post to and close WebSocket
// connections.
package mgmtapi

import (
	"context"
	"io"
	"net/http"

	"github.com/checkstack/satellite-backend/shared/awsapi"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Client implements satellite.ConnectionAPI. One client serves every stage:
// the Management API URL is given per call, so a warm Lambda reuses one HTTP
// connection pool whatever stage invoked it.
type Client struct{ api *awsapi.Client }

var _ satellite.ConnectionAPI = (*Client)(nil)

// New returns a Client over api.
func New(api *awsapi.Client) *Client { return &Client{api: api} }

// IsGone reports whether err says the connection no longer exists (HTTP 410
// GoneException).
func IsGone(err error) bool { return awsapi.IsStatus(err, http.StatusGone) }

func (c *Client) call(ctx context.Context, method, operation, managementURL, connectionID string, data []byte) error {
	u, err := awsapi.JoinURL(managementURL, "/@connections/"+awsapi.EscapeSegment(connectionID))
	if err != nil {
		return err
	}
	resp, err := c.api.Do(ctx, awsapi.Request{
		Service: "execute-api", ServiceID: "ApiGatewayManagementApi", Operation: operation, Resource: connectionID,
		Method: method, URL: u, Body: data,
	})
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// Post implements satellite.ConnectionAPI.
func (c *Client) Post(ctx context.Context, managementURL, connectionID string, data []byte) error {
	if len(data) > protocol.MaxMessageBytes {
		return satellite.Errorf(satellite.ETOOLARGE, "message of %d bytes is over the %d byte limit", len(data), protocol.MaxMessageBytes)
	}
	err := c.call(ctx, http.MethodPost, "PostToConnection", managementURL, connectionID, data)
	if IsGone(err) {
		return satellite.Wrap(err, satellite.EGONE, "connection "+connectionID+" is gone")
	}
	return satellite.Wrap(err, satellite.EINTERNAL, "post to connection "+connectionID)
}

// Close implements satellite.ConnectionAPI.
func (c *Client) Close(ctx context.Context, managementURL, connectionID string) error {
	err := c.call(ctx, http.MethodDelete, "DeleteConnection", managementURL, connectionID, nil)
	if IsGone(err) {
		return nil
	}
	return satellite.Wrap(err, satellite.EINTERNAL, "close connection "+connectionID)
}
