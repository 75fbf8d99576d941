package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strings"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// Front is the CloudFront distribution a template puts before its
// WebSocket API: the address satellites are given. Its viewer-request
// function decides, per request, whether it reaches the API (and under
// which path beneath OriginPath) or is answered at the edge; its origin
// request policy decides which of the viewer's headers the API sees.
type Front struct {
	// Distribution is the distribution's logical id (in the nested
	// template when it lives in one).
	Distribution string
	// OriginPath is the origin's path, the API's stage ("/prod").
	OriginPath string
	// Function is the viewer-request function; nil passes every request.
	Function *ViewerFunction
	// Headers are the viewer headers the origin request policy forwards
	// (canonical names); AllViewer forwards every one but Host.
	Headers   []string
	AllViewer bool
}

// LoadFront reads the distribution in front of api from the template at
// path, directly or in a nested stack whose TemplateURL is a local file.
// It returns nil when there is none.
func LoadFront(tpl *samtemplate.Template, path string, api *API) (*Front, error) {
	refs := templateRefs{api: api.LogicalID, params: map[string]any{}}
	for name, p := range tpl.Parameters {
		refs.params[name] = p.Default
	}
	if f, err := findFront(tpl, refs); f != nil || err != nil {
		return f, err
	}
	for _, id := range tpl.ResourcesOfType("AWS::CloudFormation::Stack") {
		p := tpl.Resources[id].Properties
		url, _ := p["TemplateURL"].(string)
		if url == "" || strings.Contains(url, "://") {
			continue
		}
		nested, err := samtemplate.Load(filepath.Join(filepath.Dir(path), url))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		inner := templateRefs{params: map[string]any{}}
		for name, param := range nested.Parameters {
			inner.params[name] = param.Default
		}
		given, _ := p["Parameters"].(map[string]any)
		for name, v := range given {
			if ref, ok := samtemplate.Ref(v); ok {
				if ref == api.LogicalID {
					inner.api = name
					continue
				}
				if d, ok := refs.params[ref]; ok {
					inner.params[name] = d
				}
			}
		}
		if f, err := findFront(nested, inner); f != nil || err != nil {
			if err != nil {
				err = fmt.Errorf("%s (%s): %w", id, url, err)
			}
			return f, err
		}
	}
	return nil, nil
}

// templateRefs is what a template's references resolve to locally: api is
// the name (resource or parameter) that stands for the WebSocket API's id,
// params the parameters' values.
type templateRefs struct {
	api    string
	params map[string]any
}

// sub resolves a Fn::Sub string's ${Parameter} references.
func (r templateRefs) sub(format string) (string, bool) {
	out := format
	for _, ref := range samtemplate.SubRefs(format) {
		v, ok := r.params[ref]
		if !ok {
			return "", false
		}
		out = strings.ReplaceAll(out, "${"+ref+"}", fmt.Sprint(v))
	}
	return out, true
}

func findFront(tpl *samtemplate.Template, refs templateRefs) (*Front, error) {
	if refs.api == "" {
		return nil, nil
	}
	for _, id := range tpl.ResourcesOfType("AWS::CloudFront::Distribution") {
		cfg, _ := tpl.Resources[id].Properties["DistributionConfig"].(map[string]any)
		origins, _ := cfg["Origins"].([]any)
		behavior, _ := cfg["DefaultCacheBehavior"].(map[string]any)
		for _, o := range origins {
			origin, _ := o.(map[string]any)
			domain, _ := samtemplate.Sub(origin["DomainName"])
			if !strings.HasPrefix(domain, "${"+refs.api+"}.execute-api.") || origin["Id"] != behavior["TargetOriginId"] {
				continue
			}
			f := &Front{Distribution: id}
			if p, ok := origin["OriginPath"].(string); ok {
				f.OriginPath = p
			} else if s, ok := samtemplate.Sub(origin["OriginPath"]); ok {
				if f.OriginPath, ok = refs.sub(s); !ok {
					return nil, fmt.Errorf("%s: origin path %q does not resolve locally", id, s)
				}
			}
			if err := f.loadFunction(tpl, behavior); err != nil {
				return nil, fmt.Errorf("%s: %w", id, err)
			}
			if err := f.loadHeaders(tpl, behavior); err != nil {
				return nil, fmt.Errorf("%s: %w", id, err)
			}
			return f, nil
		}
	}
	return nil, nil
}

func (f *Front) loadFunction(tpl *samtemplate.Template, behavior map[string]any) error {
	assocs, _ := behavior["FunctionAssociations"].([]any)
	for _, a := range assocs {
		assoc, _ := a.(map[string]any)
		if assoc["EventType"] != "viewer-request" {
			continue
		}
		fn, attr, ok := samtemplate.GetAtt(assoc["FunctionARN"])
		if !ok || attr != "FunctionARN" || tpl.Resources[fn].Type != "AWS::CloudFront::Function" {
			return fmt.Errorf("viewer-request association %v is not a function of the template", assoc["FunctionARN"])
		}
		p := tpl.Resources[fn].Properties
		code, ok := p["FunctionCode"].(string)
		if !ok {
			return fmt.Errorf("function %s: FunctionCode is not a literal string", fn)
		}
		cfg, _ := p["FunctionConfig"].(map[string]any)
		runtime, _ := cfg["Runtime"].(string)
		vf, err := NewViewerFunction(fn, runtime, code)
		if err != nil {
			return err
		}
		f.Function = vf
	}
	return nil
}

// Managed origin request policies by id (CloudFront's documented ids).
var managedOriginRequestPolicies = map[string]struct {
	all     bool
	headers []string
}{
	"b689b0a8-53d0-40ab-baf2-68738e2966ac": {all: true}, // AllViewerExceptHostHeader
}

func (f *Front) loadHeaders(tpl *samtemplate.Template, behavior map[string]any) error {
	id, isLiteral := behavior["OriginRequestPolicyId"].(string)
	if isLiteral {
		p, ok := managedOriginRequestPolicies[id]
		if !ok {
			return fmt.Errorf("origin request policy %s is not one the local gateway knows", id)
		}
		f.AllViewer, f.Headers = p.all, p.headers
		return nil
	}
	ref, ok := samtemplate.Ref(behavior["OriginRequestPolicyId"])
	if !ok {
		// No policy: CloudFront forwards no viewer headers, and a
		// WebSocket handshake cannot succeed (as on AWS).
		return nil
	}
	if tpl.Resources[ref].Type != "AWS::CloudFront::OriginRequestPolicy" {
		return fmt.Errorf("origin request policy %s is not a policy of the template", ref)
	}
	cfg, _ := tpl.Resources[ref].Properties["OriginRequestPolicyConfig"].(map[string]any)
	hc, _ := cfg["HeadersConfig"].(map[string]any)
	list, _ := hc["Headers"].([]any)
	switch hc["HeaderBehavior"] {
	case "whitelist", "allViewerAndWhitelistCloudFront":
		f.AllViewer = hc["HeaderBehavior"] == "allViewerAndWhitelistCloudFront"
		for _, h := range list {
			if s, ok := h.(string); ok {
				f.Headers = append(f.Headers, canonicalHeader(s))
			}
		}
	case "allViewer":
		f.AllViewer = true
	case "none", nil:
	default:
		return fmt.Errorf("header behavior %v is not supported locally", hc["HeaderBehavior"])
	}
	sort.Strings(f.Headers)
	return nil
}

// forwards reports whether the policy sends a header the viewer (or
// CloudFront, for CloudFront-* headers) set.
func (f *Front) forwards(name string) bool {
	name = canonicalHeader(name)
	if strings.HasPrefix(name, "Cloudfront-") {
		// CloudFront's own headers go only where the policy names them.
		return containsString(f.Headers, name)
	}
	if name == "Host" {
		return false
	}
	return f.AllViewer || containsString(f.Headers, name)
}

func containsString(list []string, s string) bool {
	i := sort.SearchStrings(list, s)
	return i < len(list) && list[i] == s
}

func canonicalHeader(name string) string { return http.CanonicalHeaderKey(name) }

// serveFront does for one request what the distribution does: runs the
// viewer-request function, answers with the response it generates, or
// forwards the request it returns to the origin (this gateway's stage)
// with the headers the origin request policy lets through and those
// CloudFront adds. The origin sees the edge, not the viewer, as the
// connection's source: the viewer is in X-Forwarded-For and, where the
// policy asks for it, CloudFront-Viewer-Address.
func (g *Gateway) serveFront(w http.ResponseWriter, r *http.Request) {
	f := g.cfg.Front
	viewer := sourceIP(r)
	var ev CFEvent
	ev.Version = "1.0"
	ev.Context.DistributionDomainName = r.Host
	ev.Context.DistributionID = "ELOCAL" + strings.ToUpper(g.cfg.APIID)
	ev.Context.EventType = "viewer-request"
	ev.Context.RequestID = newID()
	ev.Viewer.IP = viewer
	ev.Request = CFRequest{Method: r.Method, URI: r.URL.Path, Querystring: cfValues(r.URL.Query(), false), Headers: cfValues(r.Header, true), Cookies: map[string]CFValue{}}
	ev.Request.Headers["host"] = CFValue{Value: r.Host}
	req := &ev.Request
	if f.Function != nil {
		out, resp, err := f.Function.Run(ev)
		if err != nil {
			// CloudFront answers a function that fails with 503.
			g.log.Error("viewer-request function failed", "function", f.Function.Name, "error", err.Error())
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"message": "The CloudFront function associated with the request failed"})
			return
		}
		if resp != nil {
			for name, v := range resp.Headers {
				w.Header().Set(name, v.Value)
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = w.Write(resp.Body)
			return
		}
		req = out
	}
	g.mu.Lock()
	edge := g.host
	g.mu.Unlock()
	origin := r.Clone(r.Context())
	origin.URL.Path, origin.URL.RawPath = f.OriginPath+req.URI, ""
	origin.URL.RawQuery = cfQuery(req.Querystring)
	origin.RequestURI = origin.URL.RequestURI()
	origin.Host, origin.RemoteAddr = edge, edge
	origin.Header = http.Header{}
	for name, v := range req.Headers {
		if !f.forwards(name) {
			continue
		}
		if len(v.MultiValue) > 0 {
			for _, mv := range v.MultiValue {
				origin.Header.Add(name, mv.Value)
			}
		} else {
			origin.Header.Set(name, v.Value)
		}
	}
	// A WebSocket upgrade is always passed on; CloudFront then relays the
	// socket both ways.
	for _, h := range []string{"Connection", "Upgrade"} {
		for _, v := range r.Header.Values(h) {
			origin.Header.Add(h, v)
		}
	}
	xff := viewer
	if prior := r.Header.Get("X-Forwarded-For"); prior != "" {
		xff = prior + ", " + viewer
	}
	origin.Header.Set("X-Forwarded-For", xff)
	origin.Header.Set("Via", "1.1 "+strings.ToLower(ev.Context.DistributionID)+".cloudfront.net (CloudFront)")
	origin.Header.Set("X-Amz-Cf-Id", ev.Context.RequestID)
	if f.forwards("CloudFront-Viewer-Address") {
		origin.Header.Set("CloudFront-Viewer-Address", r.RemoteAddr)
	}
	if !f.forwards("User-Agent") {
		origin.Header.Set("User-Agent", "Amazon CloudFront")
	}
	if !g.serveStage(w, origin) {
		// execute-api refuses any path but its stages.
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "Forbidden"})
	}
}

// cfValues converts headers or query parameters to CloudFront Functions'
// shape; header names are lowercased, as CloudFront passes them.
func cfValues(in map[string][]string, lower bool) map[string]CFValue {
	out := make(map[string]CFValue, len(in))
	for name, vs := range in {
		if len(vs) == 0 {
			continue
		}
		if lower {
			name = strings.ToLower(name)
		}
		v := CFValue{Value: vs[0]}
		if len(vs) > 1 {
			for _, x := range vs {
				v.MultiValue = append(v.MultiValue, CFValue{Value: x})
			}
		}
		out[name] = v
	}
	return out
}

// cfQuery encodes a CloudFront Functions query string object.
func cfQuery(q map[string]CFValue) string {
	values := url.Values{}
	for name, v := range q {
		if len(v.MultiValue) > 0 {
			for _, mv := range v.MultiValue {
				values.Add(name, mv.Value)
			}
		} else {
			values.Set(name, v.Value)
		}
	}
	return values.Encode()
}
