package satellite

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Assignment is one health check a satellite runs: PROTOCOL.md's
// {configId, systemId, strategyId, config, collectors?, intervalSeconds,
// configName?, systemName?}, and the current protocol's systemMetadata? and
// environments?. It is stored and sent exactly as the core
// provided it (Raw), so fields this backend does not know survive the round
// trip; the parsed fields are what the backend itself needs.
type Assignment struct {
	ConfigID        string      `json:"configId"`
	SystemID        string      `json:"systemId"`
	StrategyID      string      `json:"strategyId"`
	Config          any         `json:"config"`
	Collectors      []Collector `json:"collectors,omitempty"`
	IntervalSeconds float64     `json:"intervalSeconds"`
	ConfigName      string      `json:"configName,omitempty"`
	SystemName      string      `json:"systemName,omitempty"`
	// SystemMetadata is catalog metadata (never secrets), passed through.
	SystemMetadata map[string]any `json:"systemMetadata,omitempty"`
	// Environments lists the environments the check runs in, once each;
	// empty for one environment-less run.
	Environments []Environment `json:"environments,omitempty"`

	// Raw is the assignment's JSON as stored. When set, MarshalJSON returns it
	// unchanged.
	Raw json.RawMessage `json:"-"`
	// TokenGeneration is the satellite's token generation the stored
	// assignment belongs to: a connection that authenticated with another
	// has no authority over it.
	TokenGeneration int64 `json:"-"`
}

// Environment is one environment an assignment runs in.
type Environment struct {
	ID     string         `json:"id"`
	Name   string         `json:"name"`
	Fields map[string]any `json:"fields,omitempty"`
}

// MaxEnvironments bounds the environments of one assignment.
const MaxEnvironments = 100

// maxEnvironmentIDBytes matches the protocol's bound on the ids a frame
// carries (configId, systemId, environmentId, ...).
const maxEnvironmentIDBytes = 256

// HasEnvironment reports whether the assignment lists environment id.
func (a Assignment) HasEnvironment(id string) bool {
	for _, e := range a.Environments {
		if e.ID == id {
			return true
		}
	}
	return false
}

// EnvironmentIDs returns the ids of the assignment's environments.
func (a Assignment) EnvironmentIDs() []string {
	ids := make([]string, 0, len(a.Environments))
	for _, e := range a.Environments {
		ids = append(ids, e.ID)
	}
	return ids
}

// Collector is one collector of an assignment.
type Collector struct {
	ID          string         `json:"id"`
	CollectorID string         `json:"collectorId"`
	Config      map[string]any `json:"config"`
	Assertions  []any          `json:"assertions,omitempty"`
}

// ParseAssignment decodes and validates one assignment, keeping its raw JSON.
// It returns EINVALID naming the first offending field.
func ParseAssignment(raw []byte) (Assignment, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil || probe == nil {
		return Assignment{}, Errorf(EINVALID, "assignment must be a JSON object")
	}
	var a Assignment
	if err := json.Unmarshal(raw, &a); err != nil {
		return Assignment{}, Errorf(EINVALID, "assignment: %s", describeJSONError(err))
	}
	for _, f := range []struct{ name, value string }{
		{"configId", a.ConfigID}, {"systemId", a.SystemID}, {"strategyId", a.StrategyID},
	} {
		if f.value == "" {
			return Assignment{}, Errorf(EINVALID, "assignment.%s is required and must be a non-empty string", f.name)
		}
		if len(f.value) > maxEnvironmentIDBytes {
			// A satellite could never report for it: frames bound ids.
			return Assignment{}, Errorf(EINVALID, "assignment.%s is longer than %d bytes", f.name, maxEnvironmentIDBytes)
		}
	}
	if _, ok := a.Config.(map[string]any); !ok {
		return Assignment{}, Errorf(EINVALID, "assignment.config is required and must be an object")
	}
	if _, ok := probe["intervalSeconds"]; !ok || a.IntervalSeconds <= 0 {
		return Assignment{}, Errorf(EINVALID, "assignment.intervalSeconds is required and must be a positive number")
	}
	if len(a.Environments) > MaxEnvironments {
		return Assignment{}, Errorf(EINVALID, "assignment.environments has more than %d entries", MaxEnvironments)
	}
	seen := make(map[string]bool, len(a.Environments))
	for i, e := range a.Environments {
		if e.ID == "" || len(e.ID) > maxEnvironmentIDBytes {
			return Assignment{}, Errorf(EINVALID, "assignment.environments[%d].id is required: a string of 1 to %d bytes", i, maxEnvironmentIDBytes)
		}
		if seen[e.ID] {
			return Assignment{}, Errorf(EINVALID, "assignment.environments[%d].id %q appears twice", i, e.ID)
		}
		seen[e.ID] = true
	}
	for i, c := range a.Collectors {
		if len(c.ID) > maxEnvironmentIDBytes || len(c.CollectorID) > maxEnvironmentIDBytes {
			return Assignment{}, Errorf(EINVALID, "assignment.collectors[%d] ids are longer than %d bytes", i, maxEnvironmentIDBytes)
		}
		if c.ID == "" || c.CollectorID == "" {
			return Assignment{}, Errorf(EINVALID, "assignment.collectors[%d] needs non-empty id and collectorId", i)
		}
		if c.Config == nil {
			return Assignment{}, Errorf(EINVALID, "assignment.collectors[%d].config is required and must be an object", i)
		}
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return Assignment{}, Errorf(EINVALID, "assignment is not valid JSON")
	}
	a.Raw = compact.Bytes()
	return a, nil
}

// MarshalJSON returns the stored JSON when the assignment came from storage,
// otherwise the parsed fields.
func (a Assignment) MarshalJSON() ([]byte, error) {
	if len(a.Raw) > 0 {
		return a.Raw, nil
	}
	type plain Assignment
	return json.Marshal(plain(a))
}

// Collector returns the collector whose id or collectorId equals id.
func (a Assignment) Collector(id string) (Collector, bool) {
	for _, c := range a.Collectors {
		if c.ID == id {
			return c, true
		}
	}
	for _, c := range a.Collectors {
		if c.CollectorID == id {
			return c, true
		}
	}
	return Collector{}, false
}

// describeJSONError names the mistyped field of a decoding error without
// echoing the input, which may hold anything.
func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Sprintf("field %q must be %s, not %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	}
	return "malformed JSON"
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "float64", "float32", "int", "int64":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct", "interface":
		return "an object"
	}
	return goKind
}
