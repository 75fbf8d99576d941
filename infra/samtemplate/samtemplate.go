// Package samtemplate reads template.yaml so that the local stack and the
// tests build exactly what the deployed stack has: tables with their keys and
// indexes, functions with their environment and policies, and the WebSocket
// API's routes and integrations. CloudFormation's short-form tags (!Ref,
// !Sub, !GetAtt, ...) are read into their long form ({"Ref": x},
// {"Fn::Sub": x}, ...), so the rest of the code sees plain data.
package samtemplate

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Template is a parsed SAM template.
type Template struct {
	Parameters map[string]Parameter
	Globals    map[string]any
	Resources  map[string]Resource
	Outputs    map[string]any
	Conditions map[string]any
}

// Parameter is one template parameter.
type Parameter struct {
	Type    string
	Default any
	// AllowedPattern is the regular expression CloudFormation holds a
	// String parameter's value to ("" when it sets none).
	AllowedPattern string
	// AllowedValues are the values CloudFormation accepts (nil: any).
	AllowedValues []any
}

// Resource is one template resource.
type Resource struct {
	Type       string
	Condition  string
	Properties map[string]any
	Metadata   map[string]any
	DependsOn  any
	// DeletionPolicy and UpdateReplacePolicy are what CloudFormation does
	// with the resource when the stack deletes or replaces it ("" for its
	// default, Delete).
	DeletionPolicy, UpdateReplacePolicy string
}

// Load parses the template at path.
func Load(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// Parse parses template YAML.
func Parse(b []byte) (*Template, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("template: empty document")
	}
	doc, err := decode(root.Content[0])
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	var t Template
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	return &t, nil
}

// FindRepoRoot walks up from the working directory to the directory holding
// template.yaml.
func FindRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "template.yaml")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no template.yaml above the working directory")
		}
		dir = parent
	}
}

// decode turns a YAML node into plain data, expanding short-form intrinsic
// function tags.
func decode(n *yaml.Node) (any, error) {
	var v any
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			val, err := decode(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = val
		}
		v = m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			val, err := decode(c)
			if err != nil {
				return nil, err
			}
			s = append(s, val)
		}
		v = s
	case yaml.ScalarNode:
		v = scalar(n)
	case yaml.AliasNode:
		return decode(n.Alias)
	default:
		return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		name := strings.TrimPrefix(n.Tag, "!")
		switch name {
		case "Ref", "Condition":
			return map[string]any{name: v}, nil
		case "GetAtt":
			if s, ok := v.(string); ok {
				resource, attr, _ := strings.Cut(s, ".")
				v = []any{resource, attr}
			}
		}
		return map[string]any{"Fn::" + name: v}, nil
	}
	return v, nil
}

func scalar(n *yaml.Node) any {
	switch n.Tag {
	case "!!int":
		if i, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
			return i
		}
	case "!!float":
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
			return f
		}
	case "!!bool":
		if b, err := strconv.ParseBool(n.Value); err == nil {
			return b
		}
	case "!!null":
		return nil
	}
	return n.Value
}

// ResourcesOfType returns the logical ids of every resource of a type, sorted.
func (t *Template) ResourcesOfType(typ string) []string {
	var ids []string
	for id, r := range t.Resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// Ref returns the logical id v refers to when v is {"Ref": id}.
func Ref(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", false
	}
	s, ok := m["Ref"].(string)
	return s, ok
}

// GetAtt returns (resource, attribute) when v is {"Fn::GetAtt": [r, a]}.
func GetAtt(v any) (string, string, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", "", false
	}
	s, ok := m["Fn::GetAtt"].([]any)
	if !ok || len(s) != 2 {
		return "", "", false
	}
	r, ok1 := s[0].(string)
	a, ok2 := s[1].(string)
	return r, a, ok1 && ok2
}

// Sub returns the format string of {"Fn::Sub": s} (the variable-map form is
// not used in this template).
func Sub(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", false
	}
	s, ok := m["Fn::Sub"].(string)
	return s, ok
}

// SubRefs returns the ${Name} and ${Name.Attr} references inside a Fn::Sub
// format string (not ${!Literal}).
func SubRefs(format string) []string {
	var refs []string
	for {
		i := strings.Index(format, "${")
		if i < 0 {
			return refs
		}
		format = format[i+2:]
		j := strings.Index(format, "}")
		if j < 0 {
			return refs
		}
		if name := format[:j]; !strings.HasPrefix(name, "!") {
			refs = append(refs, name)
		}
		format = format[j+1:]
	}
}

// Decode converts a piece of plain template data into a typed value through
// JSON, for properties whose shape matches an AWS API type.
func Decode(v any, into any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}
