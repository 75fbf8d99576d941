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

// A route is one admin API route: its key ("METHOD /path", as template.yaml
// declares it and API Gateway sends it as RouteKey) and the method that
// serves it.
type route struct {
	key   string
	serve func(*Handler, context.Context, events.APIGatewayV2HTTPRequest) (int, any, error)
}

// routeTable is the admin API: every route, once, with its handler. Routes
// is derived from it.
var routeTable = []route{
	{"POST /satellites", (*Handler).createSatellite},
	{"GET /satellites", (*Handler).listSatellites},
	{"GET /satellites/online", (*Handler).onlineSatellites},
	{"GET /satellites/{satelliteId}", (*Handler).getSatellite},
	{"PATCH /satellites/{satelliteId}", (*Handler).updateSatellite},
	{"DELETE /satellites/{satelliteId}", (*Handler).deleteSatellite},
	{"POST /satellites/{satelliteId}/token", (*Handler).rotateToken},
	{"PUT /satellites/{satelliteId}/assignments", (*Handler).assign},
	{"POST /script-packages", (*Handler).publishPackages},
	{"GET /script-packages", (*Handler).listPackages},
	{"GET /results", (*Handler).listResults},
	{"GET /sandbox-policy", (*Handler).getSandboxPolicy},
	{"PUT /sandbox-policy", (*Handler).setSandboxPolicy},
	{"PUT /satellites/{satelliteId}/capabilities/{kind}", (*Handler).setCapabilityConfig},
	{"DELETE /satellites/{satelliteId}/capabilities/{kind}", (*Handler).deleteCapabilityConfig},
	{"GET /telemetry", (*Handler).listTelemetry},
	{"GET /fan-outs/{jobId}", (*Handler).getFanoutJob},
}

// Routes are the HTTP API's route keys, as template.yaml declares them, in
// routeTable's order.
var Routes = routeKeys(routeTable)

func routeKeys(table []route) []string {
	keys := make([]string, len(table))
	for i, r := range table {
		keys[i] = r.key
	}
	return keys
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

// route serves req by its route key's entry in routeTable.
func (h *Handler) route(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	for _, r := range routeTable {
		if r.key == req.RouteKey {
			return r.serve(h, ctx, req)
		}
	}
	return 0, nil, satellite.Errorf(satellite.ENOTFOUND, "no route %s", req.RouteKey)
}

// createSatellite serves POST /satellites.
func (h *Handler) createSatellite(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	n, err := decodeNewSatellite(req)
	if err != nil {
		return 0, nil, err
	}
	v, tok, err := s.CreateSatellite(ctx, n)
	return http.StatusCreated, map[string]any{"satellite": v, "token": tok}, err
}

// listSatellites serves GET /satellites.
func (h *Handler) listSatellites(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	p, err := decodePageRequest(req.QueryStringParameters)
	if err != nil {
		return 0, nil, err
	}
	page, err := s.ListSatellites(ctx, p)
	return http.StatusOK, page, err
}

// onlineSatellites serves GET /satellites/online.
func (h *Handler) onlineSatellites(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	ids, err := s.OnlineSatellites(ctx)
	if ids == nil {
		ids = []string{}
	}
	return http.StatusOK, map[string]any{"satelliteIds": ids}, err
}

// getSatellite serves GET /satellites/{satelliteId}.
func (h *Handler) getSatellite(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	id := req.PathParameters["satelliteId"]
	v, err := s.Satellite(ctx, id)
	return http.StatusOK, v, err
}

// updateSatellite serves PATCH /satellites/{satelliteId}.
func (h *Handler) updateSatellite(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	id := req.PathParameters["satelliteId"]
	u, err := decodeUpdate(req)
	if err != nil {
		return 0, nil, err
	}
	v, err := s.UpdateSatellite(ctx, id, u)
	return http.StatusOK, v, err
}

// deleteSatellite serves DELETE /satellites/{satelliteId}.
func (h *Handler) deleteSatellite(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	id := req.PathParameters["satelliteId"]
	return http.StatusNoContent, nil, s.DeleteSatellite(ctx, id)
}

// rotateToken serves POST /satellites/{satelliteId}/token.
func (h *Handler) rotateToken(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	id := req.PathParameters["satelliteId"]
	r, err := s.RotateToken(ctx, id)
	return http.StatusOK, r, err
}

// assign serves PUT /satellites/{satelliteId}/assignments.
func (h *Handler) assign(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	id := req.PathParameters["satelliteId"]
	as, err := decodeAssignments(req)
	if err != nil {
		return 0, nil, err
	}
	v, err := s.ReplaceAssignments(ctx, id, as)
	return http.StatusOK, v, err
}

// publishPackages serves POST /script-packages.
func (h *Handler) publishPackages(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	ps, err := decodePackages(req)
	if err != nil {
		return 0, nil, err
	}
	p, err := s.PublishPackages(ctx, ps)
	return http.StatusAccepted, p, err
}

// listPackages serves GET /script-packages.
func (h *Handler) listPackages(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	p, err := decodePageRequest(req.QueryStringParameters)
	if err != nil {
		return 0, nil, err
	}
	v, err := s.PackageSet(ctx, p)
	return http.StatusOK, v, err
}

// listResults serves GET /results.
func (h *Handler) listResults(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	configID, systemID, environmentID, limit, err := decodeResultsQuery(req.QueryStringParameters)
	if err != nil {
		return 0, nil, err
	}
	rs, err := s.LatestResults(ctx, configID, systemID, environmentID, limit)
	return http.StatusOK, map[string]any{"results": rs}, err
}

// getSandboxPolicy serves GET /sandbox-policy.
func (h *Handler) getSandboxPolicy(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	v, err := s.SandboxPolicy(ctx)
	return http.StatusOK, v, err
}

// setSandboxPolicy serves PUT /sandbox-policy.
func (h *Handler) setSandboxPolicy(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	policy, err := decodeSandboxPolicy(req)
	if err != nil {
		return 0, nil, err
	}
	v, err := s.SetSandboxPolicy(ctx, policy)
	return http.StatusAccepted, v, err
}

// setCapabilityConfig serves PUT /satellites/{satelliteId}/capabilities/{kind}.
func (h *Handler) setCapabilityConfig(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	id := req.PathParameters["satelliteId"]
	cfg, err := decodeCapabilityConfig(req)
	if err != nil {
		return 0, nil, err
	}
	v, err := s.SetCapabilityConfig(ctx, id, cfg)
	return http.StatusOK, v, err
}

// deleteCapabilityConfig serves DELETE /satellites/{satelliteId}/capabilities/{kind}.
func (h *Handler) deleteCapabilityConfig(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	id := req.PathParameters["satelliteId"]
	kind := req.PathParameters["kind"]
	if !protocol.ValidName(kind) {
		return 0, nil, satellite.Errorf(satellite.EINVALID, "kind %q is not a capability kind", kind)
	}
	return http.StatusNoContent, nil, s.DeleteCapabilityConfig(ctx, id, kind)
}

// listTelemetry serves GET /telemetry.
func (h *Handler) listTelemetry(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	tq, err := decodeTelemetryQuery(req, s.Now(), s.TelemetryKinds)
	if err != nil {
		return 0, nil, err
	}
	listing, err := s.ListTelemetry(ctx, tq)
	return http.StatusOK, listing, err
}

// getFanoutJob serves GET /fan-outs/{jobId}.
func (h *Handler) getFanoutJob(ctx context.Context, req events.APIGatewayV2HTTPRequest) (int, any, error) {
	s := h.Service
	v, err := s.FanoutJob(ctx, req.PathParameters["jobId"])
	return http.StatusOK, v, err
}

// rawJSON is stored JSON passed through as is.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }
