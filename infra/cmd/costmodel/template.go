package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// evaluator reads template values as a stack deployed with the parameters'
// defaults has them: Ref to a parameter is its default, Fn::If takes the
// branch its condition picks, AWS::NoValue is nil.
type evaluator struct{ tpl *samtemplate.Template }

// param is a parameter's default as CloudFormation passes it: a string.
func (e evaluator) param(name string) (string, error) {
	p, ok := e.tpl.Parameters[name]
	if !ok {
		return "", fmt.Errorf("template has no parameter %s", name)
	}
	switch d := p.Default.(type) {
	case string:
		return d, nil
	case float64:
		return strconv.FormatFloat(d, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(d), nil
	}
	return "", fmt.Errorf("parameter %s has no default", name)
}

// condition evaluates a named condition.
func (e evaluator) condition(name string) (bool, error) {
	c, ok := e.tpl.Conditions[name]
	if !ok {
		return false, fmt.Errorf("template has no condition %s", name)
	}
	return e.test(c)
}

func (e evaluator) test(v any) (bool, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false, fmt.Errorf("condition %v: not a condition function", v)
	}
	for fn, arg := range m {
		args, _ := arg.([]any)
		switch fn {
		case "Condition":
			name, _ := arg.(string)
			return e.condition(name)
		case "Fn::Equals":
			if len(args) != 2 {
				return false, fmt.Errorf("Fn::Equals %v", arg)
			}
			a, err := e.scalar(args[0])
			if err != nil {
				return false, err
			}
			b, err := e.scalar(args[1])
			return a == b, err
		case "Fn::Not":
			if len(args) != 1 {
				return false, fmt.Errorf("Fn::Not %v", arg)
			}
			ok, err := e.test(args[0])
			return !ok, err
		case "Fn::And", "Fn::Or":
			all := fn == "Fn::And"
			for _, a := range args {
				ok, err := e.test(a)
				if err != nil {
					return false, err
				}
				if ok != all {
					return ok, nil
				}
			}
			return all, nil
		}
	}
	return false, fmt.Errorf("condition %v: this model evaluates Equals, Not, And, Or and Condition", v)
}

// scalar resolves v to the string CloudFormation compares.
func (e evaluator) scalar(v any) (string, error) {
	v, err := e.value(v)
	if err != nil {
		return "", err
	}
	switch s := v.(type) {
	case string:
		return s, nil
	case float64:
		return strconv.FormatFloat(s, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(s), nil
	}
	return "", fmt.Errorf("%v: not a scalar this model resolves", v)
}

// value resolves the intrinsic functions a setting may hold (Ref to a
// parameter, Fn::If) as the defaults have them; other values come back as
// they are.
func (e evaluator) value(v any) (any, error) {
	if ref, ok := samtemplate.Ref(v); ok {
		if ref == "AWS::NoValue" {
			return nil, nil
		}
		if _, isParam := e.tpl.Parameters[ref]; isParam {
			return e.param(ref)
		}
		return v, nil
	}
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		if args, ok := m["Fn::If"].([]any); ok && len(args) == 3 {
			name, _ := args[0].(string)
			on, err := e.condition(name)
			if err != nil {
				return nil, err
			}
			if on {
				return e.value(args[1])
			}
			return e.value(args[2])
		}
	}
	return v, nil
}

// variants lists every value v can take through its Fn::If branches, the
// defaults' first.
func (e evaluator) variants(v any) ([]any, error) {
	m, ok := v.(map[string]any)
	args, isIf := m["Fn::If"].([]any)
	if !ok || len(m) != 1 || !isIf || len(args) != 3 {
		r, err := e.value(v)
		return []any{r}, err
	}
	name, _ := args[0].(string)
	on, err := e.condition(name)
	if err != nil {
		return nil, err
	}
	first, second := args[1], args[2]
	if !on {
		first, second = second, first
	}
	a, err := e.variants(first)
	if err != nil {
		return nil, err
	}
	b, err := e.variants(second)
	return append(a, b...), err
}

// number resolves v to a number.
func (e evaluator) number(v any) (float64, error) {
	s, err := e.scalar(v)
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(s, 64)
}

// flag resolves v to a boolean (true, "true").
func (e evaluator) flag(v any) (bool, error) {
	s, err := e.scalar(v)
	if err != nil {
		return false, err
	}
	return strconv.ParseBool(s)
}

// logGroup is what the model needs of an AWS::Logs::LogGroup.
type logGroup struct {
	retentionDays float64 // 0: never expire
	infrequent    bool    // the INFREQUENT_ACCESS class
}

func (e evaluator) logGroup(id string) (logGroup, error) {
	r, ok := e.tpl.Resources[id]
	if !ok || r.Type != "AWS::Logs::LogGroup" {
		return logGroup{}, fmt.Errorf("template has no log group %s", id)
	}
	var g logGroup
	if v, ok := r.Properties["RetentionInDays"]; ok {
		n, err := e.number(v)
		if err != nil {
			return logGroup{}, fmt.Errorf("%s RetentionInDays: %w", id, err)
		}
		g.retentionDays = n
	}
	if v, ok := r.Properties["LogGroupClass"]; ok {
		s, err := e.scalar(v)
		if err != nil {
			return logGroup{}, fmt.Errorf("%s LogGroupClass: %w", id, err)
		}
		g.infrequent = s == "INFREQUENT_ACCESS"
	}
	return g, nil
}

// table is what the model needs of an AWS::DynamoDB::Table: its keys, its
// indexes and their projections, and whether point-in-time recovery is on.
type table struct {
	id      string
	keys    []string
	indexes []index
	pitr    bool
}

type index struct {
	name       string
	keys       []string
	projection string   // ALL, KEYS_ONLY or INCLUDE
	include    []string // INCLUDE's non-key attributes
}

func keyNames(v any) []string {
	var names []string
	list, _ := v.([]any)
	for _, k := range list {
		if m, ok := k.(map[string]any); ok {
			if n, ok := m["AttributeName"].(string); ok {
				names = append(names, n)
			}
		}
	}
	return names
}

// tables reads every table from the template's raw properties (so that a
// parameter on a property the model does not read leaves it working).
func (e evaluator) tables() ([]table, error) {
	var out []table
	for _, id := range e.tpl.ResourcesOfType("AWS::DynamoDB::Table") {
		p := e.tpl.Resources[id].Properties
		tb := table{id: id, keys: keyNames(p["KeySchema"])}
		gsis, _ := p["GlobalSecondaryIndexes"].([]any)
		for _, g := range gsis {
			m, _ := g.(map[string]any)
			name, _ := m["IndexName"].(string)
			proj, _ := m["Projection"].(map[string]any)
			ix := index{name: name, keys: keyNames(m["KeySchema"])}
			pt, err := e.scalar(proj["ProjectionType"])
			if err != nil {
				return nil, fmt.Errorf("%s index %s projection: %w", id, name, err)
			}
			ix.projection = pt
			for _, a := range asList(proj["NonKeyAttributes"]) {
				if s, ok := a.(string); ok {
					ix.include = append(ix.include, s)
				}
			}
			tb.indexes = append(tb.indexes, ix)
		}
		if spec, ok := p["PointInTimeRecoverySpecification"]; ok {
			spec, err := e.value(spec)
			if err != nil {
				return nil, fmt.Errorf("%s PointInTimeRecoverySpecification: %w", id, err)
			}
			if m, ok := spec.(map[string]any); ok && m["PointInTimeRecoveryEnabled"] != nil {
				if tb.pitr, err = e.flag(m["PointInTimeRecoveryEnabled"]); err != nil {
					return nil, fmt.Errorf("%s PointInTimeRecoveryEnabled: %w", id, err)
				}
			}
		}
		out = append(out, tb)
	}
	return out, nil
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return nil
}

// minimumCapacity is the provisioned capacity a stack keeps whatever its
// load: the minimums template.yaml gives each table's capacity nested
// stack (infra/templates/table-capacity.yaml: the table's read and write
// minimums and those of up to three indexes), and the number of scalable
// targets they make (a read and a write one per table and index).
// fromTemplate is false when the template has no such stack.
func (e evaluator) minimumCapacity() (rcu, wcu float64, targets int, fromTemplate bool, err error) {
	for _, id := range e.tpl.ResourcesOfType("AWS::CloudFormation::Stack") {
		p := e.tpl.Resources[id].Properties
		if url, _ := e.scalar(p["TemplateURL"]); !strings.HasSuffix(url, "table-capacity.yaml") {
			continue
		}
		params, _ := p["Parameters"].(map[string]any)
		add := func(read, write string) error {
			r, err := e.number(params[read])
			if err != nil {
				return fmt.Errorf("%s %s: %w", id, read, err)
			}
			w, err := e.number(params[write])
			if err != nil {
				return fmt.Errorf("%s %s: %w", id, write, err)
			}
			rcu, wcu, targets = rcu+r, wcu+w, targets+2
			return nil
		}
		if err := add("ReadCapacityMin", "WriteCapacityMin"); err != nil {
			return 0, 0, 0, false, err
		}
		for i := 1; i <= 3; i++ {
			if name, _ := e.scalar(params[fmt.Sprintf("Index%dName", i)]); name == "" {
				continue
			}
			if err := add(fmt.Sprintf("Index%dReadCapacityMin", i), fmt.Sprintf("Index%dWriteCapacityMin", i)); err != nil {
				return 0, 0, 0, false, err
			}
		}
	}
	return rcu, wcu, targets, targets > 0, nil
}
