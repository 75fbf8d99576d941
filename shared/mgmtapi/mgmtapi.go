// Package mgmtapi is the adapter of satellite.ConnectionAPI over the API
// Gateway Management API (@connections): post to and close WebSocket
// connections.
package mgmtapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// API is the part of the Management API client a Client calls.
type API interface {
	PostToConnection(ctx context.Context, in *apigatewaymanagementapi.PostToConnectionInput, optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.PostToConnectionOutput, error)
	DeleteConnection(ctx context.Context, in *apigatewaymanagementapi.DeleteConnectionInput, optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.DeleteConnectionOutput, error)
}

var _ API = (*apigatewaymanagementapi.Client)(nil)

// Client implements satellite.ConnectionAPI. One client serves every stage:
// the Management API URL (https://{api-id}.execute-api.{region}.{suffix}/{stage},
// or the local gateway's) is given per call and set as the call's
// BaseEndpoint, so a warm Lambda reuses one HTTP connection pool whatever
// stage invoked it.
type Client struct{ api API }

var _ satellite.ConnectionAPI = (*Client)(nil)

// New returns a Client over api.
func New(api API) *Client { return &Client{api: api} }

// at sends one call to the stage at managementURL.
func at(managementURL string) func(*apigatewaymanagementapi.Options) {
	return func(o *apigatewaymanagementapi.Options) { o.BaseEndpoint = aws.String(managementURL) }
}

// IsGone reports whether err says the connection no longer exists (HTTP 410
// GoneException).
func IsGone(err error) bool {
	var gone *types.GoneException
	var resp *smithyhttp.ResponseError
	return errors.As(err, &gone) || errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusGone
}

// Post implements satellite.ConnectionAPI.
func (c *Client) Post(ctx context.Context, managementURL, connectionID string, data []byte) error {
	if len(data) > protocol.MaxMessageBytes {
		return satellite.Errorf(satellite.ETOOLARGE, "message of %d bytes is over the %d byte limit", len(data), protocol.MaxMessageBytes)
	}
	_, err := c.api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(connectionID), Data: data,
	}, at(managementURL))
	if IsGone(err) {
		return satellite.Wrap(err, satellite.EGONE, "connection "+connectionID+" is gone")
	}
	return satellite.Wrap(err, satellite.EINTERNAL, "post to connection "+connectionID)
}

// Close implements satellite.ConnectionAPI.
func (c *Client) Close(ctx context.Context, managementURL, connectionID string) error {
	_, err := c.api.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{
		ConnectionId: aws.String(connectionID),
	}, at(managementURL))
	if IsGone(err) {
		return nil
	}
	return satellite.Wrap(err, satellite.EINTERNAL, "close connection "+connectionID)
}
