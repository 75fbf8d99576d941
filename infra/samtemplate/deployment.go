package samtemplate

import (
	"fmt"
)

// A Deployment is the template as CloudFormation sees it with some
// parameter values: which conditions hold, which resources exist, and
// which branch each Fn::If takes. The local stack builds from the
// defaults' deployment; the tests also check the others.
type Deployment struct {
	tpl    *Template
	params map[string]string
	conds  map[string]bool
}

// Deploy returns the deployment with the parameters' defaults, overridden
// by values, in the commercial partition (AWS::Partition is "aws"). It
// fails on a value for a parameter the template does not declare, and on a
// condition it cannot evaluate.
func (t *Template) Deploy(values map[string]string) (*Deployment, error) {
	d := &Deployment{tpl: t, params: map[string]string{"AWS::Partition": "aws"}, conds: map[string]bool{}}
	for name, p := range t.Parameters {
		if p.Default != nil {
			d.params[name] = scalarString(p.Default)
		}
	}
	for name, v := range values {
		if _, ok := t.Parameters[name]; !ok && name != "AWS::Partition" {
			return nil, fmt.Errorf("template has no parameter %s", name)
		}
		d.params[name] = v
	}
	for name := range t.Conditions {
		if _, err := d.Condition(name); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Template returns the template the deployment is of.
func (d *Deployment) Template() *Template { return d.tpl }

// Parameter returns a parameter's value in the deployment, as a string
// (false when it has none).
func (d *Deployment) Parameter(name string) (string, bool) {
	v, ok := d.params[name]
	return v, ok
}

// Condition says whether a condition of the template holds.
func (d *Deployment) Condition(name string) (bool, error) {
	if v, ok := d.conds[name]; ok {
		return v, nil
	}
	expr, ok := d.tpl.Conditions[name]
	if !ok {
		return false, fmt.Errorf("template has no condition %s", name)
	}
	v, err := d.eval(expr)
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	d.conds[name] = v
	return v, nil
}

func (d *Deployment) eval(expr any) (bool, error) {
	m, _ := expr.(map[string]any)
	if len(m) != 1 {
		return false, fmt.Errorf("%v: not a condition function", expr)
	}
	if name, ok := m["Condition"].(string); ok {
		return d.Condition(name)
	}
	args, _ := firstValue(m).([]any)
	switch {
	case m["Fn::Equals"] != nil && len(args) == 2:
		a, err := d.scalar(args[0])
		if err != nil {
			return false, err
		}
		b, err := d.scalar(args[1])
		return a == b, err
	case m["Fn::Not"] != nil && len(args) == 1:
		v, err := d.eval(args[0])
		return !v, err
	case m["Fn::And"] != nil && len(args) > 0, m["Fn::Or"] != nil && len(args) > 0:
		and := m["Fn::And"] != nil
		for _, a := range args {
			v, err := d.eval(a)
			if err != nil {
				return false, err
			}
			if v != and {
				return v, nil
			}
		}
		return and, nil
	}
	return false, fmt.Errorf("%v: not understood", expr)
}

func firstValue(m map[string]any) any {
	for _, v := range m {
		return v
	}
	return nil
}

// scalar is a condition operand: a literal, or a parameter's value.
func (d *Deployment) scalar(v any) (string, error) {
	if name, ok := Ref(v); ok {
		val, ok := d.params[name]
		if !ok {
			return "", fmt.Errorf("%s has no value", name)
		}
		return val, nil
	}
	switch v.(type) {
	case string, int64, float64, bool:
		return scalarString(v), nil
	}
	return "", fmt.Errorf("operand %v: not understood", v)
}

// Exists says whether the deployment creates a resource.
func (d *Deployment) Exists(id string) (bool, error) {
	r, ok := d.tpl.Resources[id]
	if !ok {
		return false, nil
	}
	if r.Condition == "" {
		return true, nil
	}
	return d.Condition(r.Condition)
}

// noValue is what Pick leaves where an Fn::If took !Ref AWS::NoValue; the
// property or list item is then dropped.
type noValue struct{}

// Pick returns template data with every Fn::If replaced by the branch the
// deployment takes; a property or list item that comes out as !Ref
// AWS::NoValue is left out, as CloudFormation leaves it out. Everything
// else (other references, other functions) is returned as it is.
func (d *Deployment) Pick(v any) (any, error) {
	out, err := d.pick(v)
	if _, ok := out.(noValue); ok {
		return nil, err
	}
	return out, err
}

func (d *Deployment) pick(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := Ref(v); ok && ref == "AWS::NoValue" {
			return noValue{}, nil
		}
		if branches, ok := v["Fn::If"].([]any); ok && len(v) == 1 {
			name, _ := branches[0].(string)
			if len(branches) != 3 || name == "" {
				return nil, fmt.Errorf("Fn::If %v: want [condition, then, else]", branches)
			}
			ok, err := d.Condition(name)
			if err != nil {
				return nil, err
			}
			if ok {
				return d.pick(branches[1])
			}
			return d.pick(branches[2])
		}
		out := make(map[string]any, len(v))
		for k, x := range v {
			p, err := d.pick(x)
			if err != nil {
				return nil, err
			}
			if _, drop := p.(noValue); !drop {
				out[k] = p
			}
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(v))
		for _, x := range v {
			p, err := d.pick(x)
			if err != nil {
				return nil, err
			}
			if _, drop := p.(noValue); !drop {
				out = append(out, p)
			}
		}
		return out, nil
	}
	return v, nil
}

// Properties returns a resource's properties as the deployment creates
// them (Pick), with every !Ref of a parameter replaced by its value, a
// string; nil for a resource the deployment does not create.
func (d *Deployment) Properties(id string) (map[string]any, error) {
	exists, err := d.Exists(id)
	if err != nil || !exists {
		return nil, err
	}
	picked, err := d.Pick(d.tpl.Resources[id].Properties)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	props, _ := d.refParameters(picked).(map[string]any)
	return props, nil
}

func (d *Deployment) refParameters(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if name, ok := Ref(v); ok {
			if _, param := d.tpl.Parameters[name]; param {
				return d.params[name]
			}
			return v
		}
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = d.refParameters(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = d.refParameters(x)
		}
		return out
	}
	return v
}
