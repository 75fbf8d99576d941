package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// HTTPAPI is the template's HTTP API (AWS::Serverless::HttpApi) with the
// routes its functions' HttpApi events declare.
type HTTPAPI struct {
	LogicalID string
	// Authorizer is the API's default authorizer (AWS_IAM here); the local
	// gateway does not verify signatures.
	Authorizer string
	Routes     []HTTPRoute
}

// HTTPRoute is one "METHOD /path" route and its function.
type HTTPRoute struct {
	Method   string // GET, POST, ... or ANY
	Path     string // may hold {param} and a trailing {proxy+}
	Function string
	segments []string
}

// Key is the route key API Gateway puts in events: "METHOD /path".
func (r HTTPRoute) Key() string { return r.Method + " " + r.Path }

// LoadHTTPAPI reads the template's HTTP API; nil when it has none.
func LoadHTTPAPI(tpl *samtemplate.Template) (*HTTPAPI, error) {
	apis := tpl.ResourcesOfType("AWS::Serverless::HttpApi")
	if len(apis) == 0 {
		return nil, nil
	}
	if len(apis) > 1 {
		return nil, fmt.Errorf("template has %d HTTP APIs, the gateway serves one", len(apis))
	}
	api := &HTTPAPI{LogicalID: apis[0]}
	if auth, ok := tpl.Resources[api.LogicalID].Properties["Auth"].(map[string]any); ok {
		api.Authorizer, _ = auth["DefaultAuthorizer"].(string)
	}
	for _, fn := range tpl.ResourcesOfType("AWS::Serverless::Function") {
		evs, _ := tpl.Resources[fn].Properties["Events"].(map[string]any)
		for name, raw := range evs {
			ev, _ := raw.(map[string]any)
			if ev["Type"] != "HttpApi" {
				continue
			}
			p, _ := ev["Properties"].(map[string]any)
			if ref, ok := samtemplate.Ref(p["ApiId"]); ok && ref != api.LogicalID {
				continue
			}
			method, _ := p["Method"].(string)
			path, _ := p["Path"].(string)
			if method == "" || !strings.HasPrefix(path, "/") {
				return nil, fmt.Errorf("%s.%s: HttpApi event needs Method and Path", fn, name)
			}
			api.Routes = append(api.Routes, HTTPRoute{Method: strings.ToUpper(method), Path: path, Function: fn, segments: split(path)})
		}
	}
	// Most specific first: more literal segments win over parameters, as in
	// API Gateway.
	sort.SliceStable(api.Routes, func(i, j int) bool {
		li, lj := literals(api.Routes[i].segments), literals(api.Routes[j].segments)
		if li != lj {
			return li > lj
		}
		return len(api.Routes[i].segments) > len(api.Routes[j].segments)
	})
	return api, nil
}

func split(path string) []string { return strings.Split(strings.Trim(path, "/"), "/") }

func literals(segments []string) int {
	n := 0
	for _, s := range segments {
		if !strings.HasPrefix(s, "{") {
			n++
		}
	}
	return n
}

// match finds the route for a request and its path parameters.
func (a *HTTPAPI) match(method, path string) (HTTPRoute, map[string]string, bool) {
	segs := split(path)
	for _, r := range a.Routes {
		if r.Method != "ANY" && r.Method != method {
			continue
		}
		params := map[string]string{}
		ok := true
		for i, s := range r.segments {
			if strings.HasSuffix(s, "+}") {
				if i >= len(segs) {
					ok = false
					break
				}
				params[strings.TrimSuffix(strings.TrimPrefix(s, "{"), "+}")] = strings.Join(segs[i:], "/")
				segs = segs[:i+1]
				break
			}
			if i >= len(segs) {
				ok = false
				break
			}
			if strings.HasPrefix(s, "{") {
				params[strings.Trim(s, "{}")] = segs[i]
			} else if s != segs[i] {
				ok = false
				break
			}
		}
		if ok && len(segs) == len(r.segments) {
			return r, params, true
		}
	}
	return HTTPRoute{}, nil, false
}

// serveHTTPAPI answers one HTTP API request with a payload 2.0 event, as API
// Gateway does. ok is false when no route matches.
func (g *Gateway) serveHTTPAPI(w http.ResponseWriter, r *http.Request) bool {
	api := g.cfg.HTTPAPI
	if api == nil {
		return false
	}
	route, params, ok := api.match(r.Method, r.URL.Path)
	if !ok {
		return false
	}
	started := g.cfg.Now()
	body, err := io.ReadAll(io.LimitReader(r.Body, 10<<20+1))
	if err != nil || len(body) > 10<<20 {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"message": "Request Entity Too Large"})
		return true
	}
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: route.Key(), RawPath: r.URL.Path, RawQueryString: r.URL.RawQuery,
		Headers: map[string]string{}, PathParameters: params,
	}
	for k, vs := range r.Header {
		ev.Headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	ev.Headers["host"] = r.Host
	if q := r.URL.Query(); len(q) > 0 {
		ev.QueryStringParameters = map[string]string{}
		for k, vs := range q {
			ev.QueryStringParameters[k] = strings.Join(vs, ",")
		}
	}
	if len(params) == 0 {
		ev.PathParameters = nil
	}
	for _, c := range r.Cookies() {
		ev.Cookies = append(ev.Cookies, c.Name+"="+c.Value)
	}
	if len(body) > 0 {
		ev.Body = string(body)
		if !utf8.Valid(body) {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
		}
	}
	host, _, _ := strings.Cut(r.Host, ":")
	ev.RequestContext = events.APIGatewayV2HTTPRequestContext{
		RouteKey: route.Key(), AccountID: "123456789012", Stage: "$default", RequestID: newID(), APIID: g.cfg.APIID,
		DomainName: host, DomainPrefix: strings.Split(host, ".")[0], Time: started.UTC().Format("02/Jan/2006:15:04:05 -0700"),
		TimeEpoch: started.UnixMilli(),
		HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
			Method: r.Method, Path: r.URL.Path, Protocol: r.Proto, SourceIP: sourceIP(r), UserAgent: r.UserAgent(),
		},
	}
	if api.Authorizer == "AWS_IAM" {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			IAM: &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{AccountID: "123456789012", UserARN: "arn:aws:iam::123456789012:user/local"},
		}
	}
	payload, _ := json.Marshal(ev)
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.IntegrationTimeout)
	defer cancel()
	d := &Dispatch{}
	out, err := g.cfg.Invoker.Invoke(WithDispatch(ctx, d), route.Function, payload)
	if g.cfg.OnInvoke != nil {
		g.cfg.OnInvoke(Invocation{Route: route.Key(), Started: started, Duration: time.Since(started), Err: err, Instance: d.Instance, Cold: d.Cold, Order: d.Order})
	}
	if err != nil {
		g.log.Warn("HTTP API integration failed", "route", route.Key(), "error", err.Error())
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "Internal Server Error"})
		return true
	}
	writeV2Response(w, out)
	return true
}

// writeV2Response writes a payload 2.0 Lambda response: a structured
// {statusCode, headers, body, isBase64Encoded}, or any other JSON as a 200
// application/json body.
func writeV2Response(w http.ResponseWriter, out []byte) {
	var probe map[string]json.RawMessage
	if json.Unmarshal(out, &probe) != nil || probe["statusCode"] == nil {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
		return
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "Internal Server Error"})
		return
	}
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	for _, c := range resp.Cookies {
		w.Header().Add("Set-Cookie", c)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		if b, err := base64.StdEncoding.DecodeString(resp.Body); err == nil {
			body = b
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

// Functions returns the functions the HTTP API's routes invoke.
func (a *HTTPAPI) Functions() []string {
	if a == nil {
		return nil
	}
	seen := map[string]bool{}
	var fns []string
	for _, r := range a.Routes {
		if !seen[r.Function] {
			seen[r.Function] = true
			fns = append(fns, r.Function)
		}
	}
	sort.Strings(fns)
	return fns
}
