package gateway

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dop251/goja"
)

// ViewerFunction is a CloudFront Function for the viewer-request event,
// run locally by a JavaScript interpreter (goja) with the event object
// CloudFront passes: the same code the template deploys.
type ViewerFunction struct {
	Name    string
	Runtime string
	program *goja.Program
}

// viewerFunctionBudget bounds one run. CloudFront stops a function that
// uses more than its compute budget (about a millisecond); a loop here
// would otherwise hang the gateway.
const viewerFunctionBudget = 200 * time.Millisecond

// NewViewerFunction compiles a function's code. Runtimes other than
// cloudfront-js-1.0 and 2.0 are refused.
func NewViewerFunction(name, runtime, code string) (*ViewerFunction, error) {
	if runtime != "cloudfront-js-1.0" && runtime != "cloudfront-js-2.0" {
		return nil, fmt.Errorf("function %s: runtime %q is not a CloudFront Functions runtime", name, runtime)
	}
	program, err := goja.Compile(name, code, false)
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", name, err)
	}
	return &ViewerFunction{Name: name, Runtime: runtime, program: program}, nil
}

// CFValue is a header, query string or cookie value in a CloudFront
// Functions event.
type CFValue struct {
	Value      string    `json:"value"`
	MultiValue []CFValue `json:"multiValue,omitempty"`
}

// CFRequest is the request object of a CloudFront Functions event.
type CFRequest struct {
	Method      string             `json:"method"`
	URI         string             `json:"uri"`
	Querystring map[string]CFValue `json:"querystring"`
	// Headers are keyed by lowercase name, as in CloudFront.
	Headers map[string]CFValue `json:"headers"`
	Cookies map[string]CFValue `json:"cookies"`
}

// CFResponse is a response a viewer-request function generates.
type CFResponse struct {
	StatusCode        int
	StatusDescription string
	Headers           map[string]CFValue
	Body              []byte
}

// CFEvent is the event a viewer-request function receives.
type CFEvent struct {
	Version string `json:"version"`
	Context struct {
		DistributionDomainName string `json:"distributionDomainName"`
		DistributionID         string `json:"distributionId"`
		EventType              string `json:"eventType"`
		RequestID              string `json:"requestId"`
	} `json:"context"`
	Viewer struct {
		IP string `json:"ip"`
	} `json:"viewer"`
	Request CFRequest `json:"request"`
}

// Run calls the function's handler with ev. It returns the request to
// forward, or the response to answer with instead.
func (f *ViewerFunction) Run(ev CFEvent) (*CFRequest, *CFResponse, error) {
	in, err := json.Marshal(ev)
	if err != nil {
		return nil, nil, err
	}
	vm := goja.New()
	timer := time.AfterFunc(viewerFunctionBudget, func() { vm.Interrupt("over its compute budget") })
	defer timer.Stop()
	if _, err := vm.RunProgram(f.program); err != nil {
		return nil, nil, fmt.Errorf("function %s: %w", f.Name, err)
	}
	if _, ok := goja.AssertFunction(vm.Get("handler")); !ok {
		return nil, nil, fmt.Errorf("function %s: no handler function", f.Name)
	}
	if err := vm.Set("__cloudfrontEvent", string(in)); err != nil {
		return nil, nil, err
	}
	v, err := vm.RunString("JSON.stringify(handler(JSON.parse(__cloudfrontEvent)))")
	if err != nil {
		return nil, nil, fmt.Errorf("function %s: %w", f.Name, err)
	}
	out, ok := v.Export().(string)
	if !ok {
		return nil, nil, fmt.Errorf("function %s: handler returned nothing", f.Name)
	}
	return decodeFunctionResult(f.Name, []byte(out))
}

// decodeFunctionResult tells a returned response (it has a statusCode)
// from a returned request.
func decodeFunctionResult(name string, out []byte) (*CFRequest, *CFResponse, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(out, &probe); err != nil {
		return nil, nil, fmt.Errorf("function %s: handler returned %s, not an object", name, out)
	}
	if _, isResponse := probe["statusCode"]; !isResponse {
		var req CFRequest
		if err := json.Unmarshal(out, &req); err != nil {
			return nil, nil, fmt.Errorf("function %s: returned request: %w", name, err)
		}
		if !strings.HasPrefix(req.URI, "/") {
			return nil, nil, fmt.Errorf("function %s: returned request has uri %q", name, req.URI)
		}
		return &req, nil, nil
	}
	var raw struct {
		StatusCode        int                `json:"statusCode"`
		StatusDescription string             `json:"statusDescription"`
		Headers           map[string]CFValue `json:"headers"`
		Body              json.RawMessage    `json:"body"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, nil, fmt.Errorf("function %s: returned response: %w (statusCode must be a number)", name, err)
	}
	if raw.StatusCode < 100 || raw.StatusCode > 599 {
		return nil, nil, fmt.Errorf("function %s: returned status %d", name, raw.StatusCode)
	}
	resp := &CFResponse{StatusCode: raw.StatusCode, StatusDescription: raw.StatusDescription, Headers: raw.Headers}
	body, err := responseBody(raw.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("function %s: %w", name, err)
	}
	resp.Body = body
	return nil, resp, nil
}

// responseBody reads a generated response's body: a string, or
// {"data", "encoding": "text"|"base64"} (cloudfront-js-2.0).
func responseBody(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []byte(s), nil
	}
	var b struct {
		Data     string `json:"data"`
		Encoding string `json:"encoding"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, errors.New("response body is neither a string nor {data, encoding}")
	}
	switch b.Encoding {
	case "", "text":
		return []byte(b.Data), nil
	case "base64":
		return base64.StdEncoding.DecodeString(b.Data)
	}
	return nil, fmt.Errorf("response body encoding %q is not text or base64", b.Encoding)
}
