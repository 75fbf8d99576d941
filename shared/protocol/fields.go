package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// The field reader: typed, bounded reads of a frame's fields, recording the
// first failure.

type object map[string]json.RawMessage

// reader pulls typed fields out of a frame and records the first failure.
type reader struct {
	fields object
	frame  *InvalidFrame
	err    *InvalidFrame
}

func (r *reader) reject(field, reason string) {
	if r.err == nil {
		r.frame.Field, r.frame.Reason = field, reason
		r.err = r.frame
	}
}

func (r *reader) fail() error { return invalid(satellite.EINVALID, r.err) }

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func (r *reader) str(name string) string {
	raw, ok := r.fields[name]
	if !ok {
		r.reject(name, "is required")
		return ""
	}
	var s string
	if isNull(raw) || json.Unmarshal(raw, &s) != nil {
		r.reject(name, "must be a string")
	}
	return s
}

// bounded is a required string of at most max bytes.
func (r *reader) bounded(name string, max int) string {
	s := r.str(name)
	if len(s) > max {
		r.reject(name, fmt.Sprintf("is longer than %d bytes", max))
	}
	return s
}

// id is a required id: a string of at most MaxIDBytes.
func (r *reader) id(name string) string { return r.bounded(name, MaxIDBytes) }

func (r *reader) nullableStr(name string) *string {
	if _, ok := r.fields[name]; !ok {
		r.reject(name, "is required (a string or null)")
		return nil
	}
	return r.optNullableStr(name)
}

func (r *reader) optNullableStr(name string) *string {
	raw, ok := r.fields[name]
	if !ok || isNull(raw) {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		r.reject(name, "must be a string or null")
		return nil
	}
	return &s
}

func (r *reader) num(name string) float64 {
	if _, ok := r.fields[name]; !ok {
		r.reject(name, "is required")
		return 0
	}
	n := r.optNum(name)
	if n == nil {
		r.reject(name, "must be a number")
		return 0
	}
	return *n
}

func (r *reader) optNum(name string) *float64 {
	raw, ok := r.fields[name]
	if !ok || isNull(raw) {
		return nil
	}
	var n float64
	if json.Unmarshal(raw, &n) != nil {
		r.reject(name, "must be a number")
		return nil
	}
	return &n
}

func (r *reader) optObject(name string, maxDepth int) json.RawMessage {
	raw, ok := r.fields[name]
	if !ok || isNull(raw) {
		return nil
	}
	if Depth(raw) > maxDepth {
		r.reject(name, fmt.Sprintf("nests deeper than %d levels", maxDepth))
		return nil
	}
	var o object
	if json.Unmarshal(raw, &o) != nil {
		r.reject(name, "must be an object")
		return nil
	}
	var compact bytes.Buffer
	if json.Compact(&compact, raw) != nil {
		r.reject(name, "must be an object")
		return nil
	}
	return compact.Bytes()
}

// Depth returns how deeply raw (valid JSON) nests objects and arrays; it
// counts brackets outside strings, so it costs one pass whatever the depth.
func Depth(raw json.RawMessage) int {
	deepest, level, inString, escaped := 0, 0, false, false
	for _, c := range raw {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			level++
			deepest = max(deepest, level)
		case c == '}' || c == ']':
			level--
		}
	}
	return deepest
}

func (r *reader) timestamp(name string) time.Time {
	s := r.str(name)
	if r.err != nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		r.reject(name, "must be an ISO 8601 timestamp")
	}
	return t.UTC()
}

// name is a required capability or kind name.
func (r *reader) name(field string) string {
	s := r.str(field)
	if r.err == nil && !ValidName(s) {
		r.reject(field, fmt.Sprintf("must be 1 to %d letters, digits, '.', '_' or '-', starting with a letter or digit", MaxNameBytes))
	}
	return s
}

// capabilities is the optional list of names, sorted and without
// duplicates; nil when absent or null, and never nil when the frame has a
// list (nil keeps the stored list, an empty one clears it). Capabilities
// are optional, so a bad list never makes the frame invalid: a value that
// is not an array of strings counts as absent, names that are not names are
// left out, and so are those past MaxCapabilities. dropped says what was
// left out.
func (r *reader) capabilities() (list []string, dropped string) {
	raw, ok := r.fields["capabilities"]
	if !ok || isNull(raw) {
		return nil, ""
	}
	var all []string
	if json.Unmarshal(raw, &all) != nil {
		return nil, "capabilities is not an array of strings; ignored"
	}
	list = []string{}
	bad := 0
	for _, c := range all {
		if ValidName(c) {
			list = append(list, c)
		} else {
			bad++
		}
	}
	slices.Sort(list)
	list = slices.Compact(list)
	var notes []string
	if bad > 0 {
		notes = append(notes, fmt.Sprintf("%d capabilities that are not 1 to %d letters, digits, '.', '_' or '-' left out", bad, MaxNameBytes))
	}
	if len(list) > MaxCapabilities {
		notes = append(notes, fmt.Sprintf("%d capabilities past the first %d left out", len(list)-MaxCapabilities, MaxCapabilities))
		list = list[:MaxCapabilities]
	}
	return list, strings.Join(notes, "; ")
}

// payload is an opaque JSON value (compacted), nesting at most
// MaxResultDepth; null counts as absent.
func (r *reader) payload(field string, required bool) json.RawMessage {
	raw, ok := r.fields[field]
	if !ok || isNull(raw) {
		if required {
			r.reject(field, "is required")
		}
		return nil
	}
	if Depth(raw) > MaxResultDepth {
		r.reject(field, fmt.Sprintf("nests deeper than %d levels", MaxResultDepth))
		return nil
	}
	var compact bytes.Buffer
	if json.Compact(&compact, raw) != nil {
		r.reject(field, "is not valid JSON")
		return nil
	}
	return compact.Bytes()
}

// dropped is telemetry_batch.droppedByGroup: group -> count of items the
// agent dropped, at most MaxDroppedGroups entries of non-negative numbers.
func (r *reader) dropped(field string) map[string]float64 {
	raw, ok := r.fields[field]
	if !ok || isNull(raw) {
		return nil
	}
	var m map[string]float64
	if json.Unmarshal(raw, &m) != nil {
		r.reject(field, "must be an object of numbers")
		return nil
	}
	if len(m) > MaxDroppedGroups {
		r.reject(field, fmt.Sprintf("has more than %d entries", MaxDroppedGroups))
		return nil
	}
	for k, v := range m {
		if k == "" || len(k) > MaxIDBytes || v < 0 {
			r.reject(field, fmt.Sprintf("keys must be 1 to %d bytes and counts non-negative", MaxIDBytes))
			return nil
		}
	}
	return m
}
