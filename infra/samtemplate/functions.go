package samtemplate

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Statement is one IAM policy statement of a function.
type Statement struct {
	Effect    string
	Actions   []string
	Resources []any // template values: ARNs, {"Fn::GetAtt": ...}, {"Fn::Sub": ...}
	// Condition is the statement's condition block (operator -> key ->
	// value or values), nil when it has none.
	Condition map[string]any
}

// Role returns the logical id of the AWS::IAM::Role a function runs as
// (its Role is !GetAtt <role>.Arn); false when it names none, and SAM
// generates one.
func (t *Template) Role(function string) (string, bool) {
	role, attr, ok := GetAtt(t.Resources[function].Properties["Role"])
	if !ok || attr != "Arn" || t.Resources[role].Type != "AWS::IAM::Role" {
		return "", false
	}
	return role, true
}

// PolicyStatements returns the inline policy statements of a function (a
// SAM function, or a plain AWS::Lambda::Function, which must name a role):
// its role's policies when it names a role of the template, else its SAM
// Policies. Conditional statements (Fn::If) are taken on their true
// branch: the check is against the template's defaults, where every
// optional feature is on.
func (t *Template) PolicyStatements(function string) ([]Statement, error) {
	r, ok := t.Resources[function]
	if !ok || (r.Type != "AWS::Serverless::Function" && r.Type != "AWS::Lambda::Function") {
		return nil, fmt.Errorf("template has no function %s", function)
	}
	var docs []any
	if role, ok := t.Role(function); !ok && r.Type == "AWS::Lambda::Function" {
		return nil, fmt.Errorf("%s: Role = %v, want !GetAtt <role>.Arn of a role of this stack", function, r.Properties["Role"])
	} else if ok {
		if _, sam := r.Properties["Policies"]; sam {
			return nil, fmt.Errorf("%s: both a Role and Policies (SAM ignores the Policies)", function)
		}
		policies, _ := t.Resources[role].Properties["Policies"].([]any)
		for _, p := range policies {
			m, _ := p.(map[string]any)
			docs = append(docs, m["PolicyDocument"])
		}
	} else {
		docs, _ = r.Properties["Policies"].([]any)
	}
	var out []Statement
	for _, p := range docs {
		doc, ok := p.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: policy %v is not an inline policy document", function, p)
		}
		stmts, _ := doc["Statement"].([]any)
		for _, s := range stmts {
			if m, ok := s.(map[string]any); ok {
				if branches, ok := m["Fn::If"].([]any); ok && len(branches) == 3 {
					s = branches[1]
				}
			}
			m, ok := s.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: statement %v is not an object", function, s)
			}
			st := Statement{Effect: fmt.Sprint(m["Effect"])}
			st.Condition, _ = m["Condition"].(map[string]any)
			st.Actions = stringList(m["Action"])
			switch res := m["Resource"].(type) {
			case []any:
				st.Resources = res
			default:
				st.Resources = []any{res}
			}
			out = append(out, st)
		}
	}
	return out, nil
}

func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, s := range v {
			out = append(out, fmt.Sprint(s))
		}
		return out
	}
	return nil
}

// Environment returns the environment variables a function gets: the
// template's Globals merged with its own.
func (t *Template) Environment(function string) map[string]any {
	env := map[string]any{}
	if g, ok := t.Globals["Function"].(map[string]any); ok {
		if e, ok := g["Environment"].(map[string]any); ok {
			if vars, ok := e["Variables"].(map[string]any); ok {
				for k, v := range vars {
					env[k] = v
				}
			}
		}
	}
	if e, ok := t.Resources[function].Properties["Environment"].(map[string]any); ok {
		if vars, ok := e["Variables"].(map[string]any); ok {
			for k, v := range vars {
				env[k] = v
			}
		}
	}
	return env
}

// ResolveEnvironment returns a function's environment with every value made a
// string: !Ref of a resource or parameter is looked up in refs, then in the
// parameter defaults; !Sub is expanded the same way. It fails on a value it
// cannot resolve, so a new intrinsic in the template is noticed.
func (t *Template) ResolveEnvironment(function string, refs map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for name, v := range t.Environment(function) {
		s, err := t.resolve(v, refs)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", function, name, err)
		}
		out[name] = s
	}
	return out, nil
}

func (t *Template) resolve(v any, refs map[string]string) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case int64, float64, bool:
		return scalarString(v), nil
	}
	if name, ok := Ref(v); ok {
		return t.lookup(name, refs)
	}
	if format, ok := Sub(v); ok {
		var err error
		out := format
		for _, name := range SubRefs(format) {
			val, lerr := t.lookup(name, refs)
			if lerr != nil {
				err = lerr
			}
			out = strings.ReplaceAll(out, "${"+name+"}", val)
		}
		return out, err
	}
	return "", fmt.Errorf("cannot resolve %v locally", v)
}

// Resolve makes a template value a string as ResolveEnvironment does: a
// literal as CloudFormation renders it, a !Ref or !Sub from refs, then the
// parameter defaults.
func (t *Template) Resolve(v any, refs map[string]string) (string, error) { return t.resolve(v, refs) }

func (t *Template) lookup(name string, refs map[string]string) (string, error) {
	if v, ok := refs[name]; ok {
		return v, nil
	}
	if p, ok := t.Parameters[name]; ok {
		if p.Default == nil {
			return "", nil
		}
		return scalarString(p.Default), nil
	}
	return "", fmt.Errorf("no local value for %s", name)
}

// scalarString renders a template scalar as CloudFormation does: a whole number
// without exponent or fraction (2097152, not 2.097152e+06).
func scalarString(v any) string {
	if f, ok := v.(float64); ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.FormatInt(int64(f), 10)
	}
	return fmt.Sprint(v)
}

// FunctionName returns the name a function deploys under: its FunctionName
// resolved with refs (as ResolveEnvironment resolves values), or its
// logical id, the name `sam local` gives it, when it sets none.
func (t *Template) FunctionName(function string, refs map[string]string) (string, error) {
	v, ok := t.Resources[function].Properties["FunctionName"]
	if !ok {
		return function, nil
	}
	name, err := t.resolve(v, refs)
	if err != nil {
		return "", fmt.Errorf("%s FunctionName: %w", function, err)
	}
	return name, nil
}

// Timeout returns a function's Timeout, its own or the Globals', and
// Lambda's default of 3 s when neither sets one.
func (t *Template) Timeout(function string) time.Duration {
	g, _ := t.Globals["Function"].(map[string]any)
	for _, v := range []any{t.Resources[function].Properties["Timeout"], g["Timeout"]} {
		if n, ok := v.(float64); ok && n > 0 {
			return time.Duration(n * float64(time.Second))
		}
	}
	return 3 * time.Second
}

// MemorySize returns a function's MemorySize in MB, its own or the
// Globals', and Lambda's default of 128 MB when neither sets one.
func (t *Template) MemorySize(function string) float64 {
	g, _ := t.Globals["Function"].(map[string]any)
	for _, v := range []any{t.Resources[function].Properties["MemorySize"], g["MemorySize"]} {
		if n, ok := v.(float64); ok && n > 0 {
			return n
		}
	}
	return 128
}

// Lambda's defaults for asynchronous invocations.
const (
	DefaultAsyncRetries = 2
	DefaultMaxEventAge  = 6 * time.Hour
)

// AsyncRetries returns how Lambda handles a function's asynchronous
// invocations: how often it retries one that failed (its EventInvokeConfig's
// MaximumRetryAttempts, DefaultAsyncRetries when not set) and how long an
// event may wait (MaximumEventAgeInSeconds, DefaultMaxEventAge).
func (t *Template) AsyncRetries(function string) (retries int, maxAge time.Duration) {
	retries, maxAge = DefaultAsyncRetries, DefaultMaxEventAge
	cfg, _ := t.Resources[function].Properties["EventInvokeConfig"].(map[string]any)
	if n, ok := cfg["MaximumRetryAttempts"].(float64); ok {
		retries = int(n)
	}
	if n, ok := cfg["MaximumEventAgeInSeconds"].(float64); ok {
		maxAge = time.Duration(n) * time.Second
	}
	return retries, maxAge
}
