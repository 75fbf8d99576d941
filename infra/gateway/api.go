// Package gateway is a local stand-in for an API Gateway WebSocket API, read
// from template.yaml: it accepts WebSocket connections, selects routes with
// the API's route selection expression, invokes each route's Lambda
// integration with the event API Gateway would send, and serves the
// Management API (@connections) on the same port. It also runs the
// template's scheduled functions. SAM CLI cannot run WebSocket APIs locally;
// this is what `make dev` runs instead.
package gateway

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// API is the WebSocket API of a template.
type API struct {
	LogicalID                string
	RouteSelectionExpression string
	// Routes maps a route key ($connect, $default, $disconnect or a custom
	// key) to the function its integration invokes.
	Routes map[string]Route
	// Stage is the stage name the template deploys (its parameter default).
	Stage string
}

// Route is one route and the Lambda function behind it.
type Route struct {
	Key      string
	Function string // logical id
}

// Schedule is a function the template runs on an EventBridge schedule.
type Schedule struct {
	Function   string
	Name       string // the event's name in the template
	Expression string // rate(...) or cron(...)
	Every      time.Duration
	// Timeout is the function's Timeout: an invocation's deadline, as
	// Lambda gives it to an asynchronous (scheduled) event.
	Timeout time.Duration
}

// LoadAPI reads the template's only WebSocket API.
func LoadAPI(tpl *samtemplate.Template) (*API, error) {
	var apis []string
	for _, id := range tpl.ResourcesOfType("AWS::ApiGatewayV2::Api") {
		if tpl.Resources[id].Properties["ProtocolType"] == "WEBSOCKET" {
			apis = append(apis, id)
		}
	}
	if len(apis) != 1 {
		return nil, fmt.Errorf("template has %d WebSocket APIs, the gateway serves exactly one", len(apis))
	}
	api := &API{LogicalID: apis[0], Routes: map[string]Route{}}
	api.RouteSelectionExpression, _ = tpl.Resources[api.LogicalID].Properties["RouteSelectionExpression"].(string)
	if !strings.HasPrefix(api.RouteSelectionExpression, "$request.body.") {
		return nil, fmt.Errorf("route selection expression %q is not $request.body.<field>", api.RouteSelectionExpression)
	}
	for _, id := range tpl.ResourcesOfType("AWS::ApiGatewayV2::Route") {
		p := tpl.Resources[id].Properties
		if ref, _ := samtemplate.Ref(p["ApiId"]); ref != api.LogicalID {
			continue
		}
		key, _ := p["RouteKey"].(string)
		target, _ := samtemplate.Sub(p["Target"])
		integrationID := strings.TrimSuffix(strings.TrimPrefix(target, "integrations/${"), "}")
		integration, ok := tpl.Resources[integrationID]
		if !ok || integration.Type != "AWS::ApiGatewayV2::Integration" {
			return nil, fmt.Errorf("route %s: target %q is not an integration of the template", key, target)
		}
		if t := integration.Properties["IntegrationType"]; t != "AWS_PROXY" {
			return nil, fmt.Errorf("route %s: integration type %v; the gateway runs AWS_PROXY Lambda integrations", key, t)
		}
		fn := ""
		if uri, ok := samtemplate.Sub(integration.Properties["IntegrationUri"]); ok {
			for _, ref := range samtemplate.SubRefs(uri) {
				if name, ok := strings.CutSuffix(ref, ".Arn"); ok && tpl.Resources[name].Type == "AWS::Serverless::Function" {
					fn = name
				}
			}
		}
		if fn == "" {
			return nil, fmt.Errorf("route %s: integration %s does not invoke a function of the template", key, integrationID)
		}
		api.Routes[key] = Route{Key: key, Function: fn}
	}
	for _, id := range tpl.ResourcesOfType("AWS::ApiGatewayV2::Stage") {
		p := tpl.Resources[id].Properties
		if ref, _ := samtemplate.Ref(p["ApiId"]); ref != api.LogicalID {
			continue
		}
		switch name := p["StageName"].(type) {
		case string:
			api.Stage = name
		default:
			if ref, ok := samtemplate.Ref(name); ok {
				if param, ok := tpl.Parameters[ref]; ok {
					api.Stage = fmt.Sprint(param.Default)
				}
			}
		}
	}
	if api.Stage == "" {
		return nil, fmt.Errorf("no stage with a name for API %s", api.LogicalID)
	}
	return api, nil
}

// Functions returns the functions the API's routes invoke, sorted.
func (a *API) Functions() []string {
	seen := map[string]bool{}
	for _, r := range a.Routes {
		seen[r.Function] = true
	}
	fns := make([]string, 0, len(seen))
	for f := range seen {
		fns = append(fns, f)
	}
	sort.Strings(fns)
	return fns
}

var ratePattern = regexp.MustCompile(`^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$`)

// ParseRate returns the interval of an EventBridge rate expression. cron()
// expressions are not run locally.
func ParseRate(expr string) (time.Duration, error) {
	m := ratePattern.FindStringSubmatch(strings.TrimSpace(expr))
	if m == nil {
		return 0, fmt.Errorf("schedule %q: only rate(N minutes|hours|days) runs locally", expr)
	}
	n, _ := strconv.Atoi(m[1])
	if n <= 0 {
		return 0, fmt.Errorf("schedule %q: rate must be positive", expr)
	}
	unit := map[string]time.Duration{"minute": time.Minute, "minutes": time.Minute, "hour": time.Hour, "hours": time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour}[m[2]]
	return time.Duration(n) * unit, nil
}

// LoadSchedules returns every Schedule (or ScheduleV2) event of the
// template's functions.
func LoadSchedules(tpl *samtemplate.Template) ([]Schedule, error) {
	var out []Schedule
	for _, fn := range tpl.ResourcesOfType("AWS::Serverless::Function") {
		evs, _ := tpl.Resources[fn].Properties["Events"].(map[string]any)
		names := make([]string, 0, len(evs))
		for name := range evs {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			ev, _ := evs[name].(map[string]any)
			if t := ev["Type"]; t != "Schedule" && t != "ScheduleV2" {
				continue
			}
			props, _ := ev["Properties"].(map[string]any)
			expr, _ := props["Schedule"].(string)
			if expr == "" {
				expr, _ = props["ScheduleExpression"].(string)
			}
			if enabled, ok := props["Enabled"].(bool); ok && !enabled {
				continue
			}
			every, err := ParseRate(expr)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", fn, name, err)
			}
			out = append(out, Schedule{Function: fn, Name: name, Expression: expr, Every: every, Timeout: tpl.Timeout(fn)})
		}
	}
	return out, nil
}
