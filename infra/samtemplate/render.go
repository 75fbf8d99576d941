package samtemplate

import (
	"bytes"
	"fmt"
	"sort"

	"gopkg.in/yaml.v3"
)

// WithDefaults returns the template YAML src with the defaults of some
// parameters replaced, and nothing else changed (tags, comments and order
// are kept). It renders the deployment modes a linter cannot otherwise
// see: cfn-lint resolves parameters by their defaults after the SAM
// transform, whatever values it is given. A parameter the template does
// not declare is an error.
func WithDefaults(src []byte, defaults map[string]string) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("template: not a mapping")
	}
	params := mappingValue(root.Content[0], "Parameters")
	if params == nil {
		return nil, fmt.Errorf("template: no Parameters")
	}
	names := make([]string, 0, len(defaults))
	for name := range defaults {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		param := mappingValue(params, name)
		if param == nil || param.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("template: no parameter %s", name)
		}
		value := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: defaults[name], Style: yaml.DoubleQuotedStyle}
		if old := mappingValue(param, "Default"); old != nil {
			*old = *value
		} else {
			param.Content = append(param.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "Default"}, value)
		}
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	return out.Bytes(), nil
}

// mappingValue returns the value node of key in a mapping node, or nil.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
