package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/aws/aws-lambda-go/events"

	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Routes are the HTTP API's route keys, as template.yaml declares them.
var Routes = []string{
	"POST /satellites",
	"GET /satellites",
	"GET /satellites/online",
	"GET /satellites/{satelliteId}",
	"PATCH /satellites/{satelliteId}",
	"DELETE /satellites/{satelliteId}",
	"POST /satellites/{satelliteId}/token",
	"PUT /satellites/{satelliteId}/assignments",
	"POST /script-packages",
	"GET /script-packages",
	"GET /results",
	"GET /sandbox-policy",
	"PUT /sandbox-policy",
	"PUT /satellites/{satelliteId}/capabilities/{kind}",
	"DELETE /satellites/{satelliteId}/capabilities/{kind}",
	"GET /telemetry",
	"GET /fan-outs/{jobId}",
}

// Handler serves the admin HTTP API (API Gateway HTTP API, payload 2.0).
type Handler struct {
	Service *Service
	Log     *slog.Logger
	// Metrics is written at the end of every request; nil records nothing.
	Metrics *metrics.Recorder
}

// ErrorBody is the one error shape: {"error": {"code", "message"}}.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// status maps an error to its HTTP status: the one place where that happens.
func status(err error) int {
	switch satellite.ErrorCode(err) {
	case satellite.EMALFORMED:
		return http.StatusBadRequest
	case satellite.EINVALID:
		return http.StatusUnprocessableEntity
	case satellite.ENOTFOUND:
		return http.StatusNotFound
	case satellite.ECONFLICT:
		return http.StatusConflict
	case satellite.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case satellite.EUNAVAILABLE:
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError
}

// located is an answer naming where what it started can be followed (a
// fan-out job): its Location header.
type located interface{ location() string }

func respond(code int, body any) events.APIGatewayV2HTTPResponse {
	b, _ := json.Marshal(body)
	resp := events.APIGatewayV2HTTPResponse{
		StatusCode: code,
		Headers:    map[string]string{"Content-Type": "application/json"},
		Body:       string(b),
	}
	if l, ok := body.(located); ok && l.location() != "" {
		resp.Headers["Location"] = l.location()
	}
	return resp
}

func (h *Handler) fail(ctx context.Context, req events.APIGatewayV2HTTPRequest, err error) events.APIGatewayV2HTTPResponse {
	code := status(err)
	var body ErrorBody
	body.Error.Code = string(satellite.ErrorCode(err))
	body.Error.Message = satellite.ErrorMessage(err)
	level := slog.LevelWarn
	if code >= 500 {
		level = slog.LevelError
	}
	h.Log.LogAttrs(ctx, level, "admin request failed", slog.String("route", req.RouteKey), slog.Int("status", code), slog.String("error", err.Error()))
	return respond(code, body)
}

// Handle is the Lambda handler. Only failures of the backend reach API
// Gateway as 5xx; a bad request is a 4xx answer, not a Lambda error.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	defer h.Metrics.FlushAll()
	code, body, err := h.route(ctx, req)
	if err != nil {
		return h.fail(ctx, req, err), nil
	}
	if code == http.StatusNoContent {
		return events.APIGatewayV2HTTPResponse{StatusCode: code}, nil
	}
	return respond(code, body), nil
}

func (h *Handler) route(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	id := req.PathParameters["satelliteId"]
	switch req.RouteKey {
	case "POST /satellites":
		n, err := decodeNewSatellite(req)
		if err != nil {
			return 0, nil, err
		}
		v, tok, err := s.Create(ctx, n)
		return http.StatusCreated, map[string]any{"satellite": v, "token": tok}, err
	case "GET /satellites":
		p, err := decodePageRequest(req.QueryStringParameters)
		if err != nil {
			return 0, nil, err
		}
		page, err := s.List(ctx, p)
		return http.StatusOK, page, err
	case "GET /satellites/online":
		ids, err := s.Online(ctx)
		if ids == nil {
			ids = []string{}
		}
		return http.StatusOK, map[string]any{"satelliteIds": ids}, err
	case "GET /satellites/{satelliteId}":
		v, err := s.Get(ctx, id)
		return http.StatusOK, v, err
	case "PATCH /satellites/{satelliteId}":
		u, err := decodeUpdate(req)
		if err != nil {
			return 0, nil, err
		}
		v, err := s.Update(ctx, id, u)
		return http.StatusOK, v, err
	case "DELETE /satellites/{satelliteId}":
		return http.StatusNoContent, nil, s.Delete(ctx, id)
	case "POST /satellites/{satelliteId}/token":
		r, err := s.RotateToken(ctx, id)
		return http.StatusOK, r, err
	case "PUT /satellites/{satelliteId}/assignments":
		as, err := decodeAssignments(req)
		if err != nil {
			return 0, nil, err
		}
		v, err := s.Assign(ctx, id, as)
		return http.StatusOK, v, err
	case "POST /script-packages":
		ps, err := decodePackages(req)
		if err != nil {
			return 0, nil, err
		}
		p, err := s.Publish(ctx, ps)
		return http.StatusAccepted, p, err
	case "GET /script-packages":
		p, err := decodePageRequest(req.QueryStringParameters)
		if err != nil {
			return 0, nil, err
		}
		v, err := s.PackageSet(ctx, p)
		return http.StatusOK, v, err
	case "GET /results":
		configID, systemID, environmentID, limit, err := decodeResultsQuery(req.QueryStringParameters)
		if err != nil {
			return 0, nil, err
		}
		rs, err := s.Results(ctx, configID, systemID, environmentID, limit)
		return http.StatusOK, map[string]any{"results": rs}, err
	case "GET /sandbox-policy":
		v, err := s.SandboxPolicy(ctx)
		return http.StatusOK, v, err
	case "PUT /sandbox-policy":
		policy, err := decodeSandboxPolicy(req)
		if err != nil {
			return 0, nil, err
		}
		v, err := s.SetSandboxPolicy(ctx, policy)
		return http.StatusAccepted, v, err
	case "PUT /satellites/{satelliteId}/capabilities/{kind}":
		cfg, err := decodeCapabilityConfig(req)
		if err != nil {
			return 0, nil, err
		}
		v, err := s.SetCapabilityConfig(ctx, id, cfg)
		return http.StatusOK, v, err
	case "DELETE /satellites/{satelliteId}/capabilities/{kind}":
		kind := req.PathParameters["kind"]
		if !protocol.ValidName(kind) {
			return 0, nil, satellite.Errorf(satellite.EINVALID, "kind %q is not a capability kind", kind)
		}
		return http.StatusNoContent, nil, s.DeleteCapabilityConfig(ctx, id, kind)
	case "GET /fan-outs/{jobId}":
		v, err := s.FanoutJob(ctx, req.PathParameters["jobId"])
		return http.StatusOK, v, err
	case "GET /telemetry":
		tq, err := decodeTelemetryQuery(req, s.Now(), s.TelemetryKinds)
		if err != nil {
			return 0, nil, err
		}
		listing, err := s.ListTelemetry(ctx, tq)
		return http.StatusOK, listing, err
	}
	return 0, nil, satellite.Errorf(satellite.ENOTFOUND, "no route %s", req.RouteKey)
}

// rawJSON is stored JSON passed through as is.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }
