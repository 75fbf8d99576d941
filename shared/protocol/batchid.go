package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Telemetry batch ids: reading one exactly (never through a float64), and
// echoing one Parse refused so the batch can still be acknowledged.

// batchID is a telemetry batchId: a string of 1 to MaxIDBytes, or a
// non-negative integer up to MaxBatchID written in any JSON form of it (7,
// 7.0, 7e0). It returns the id to echo (a number as its digits, a string
// re-encoded) and the dedupe key ("n:" and the digits, "s:" and the
// string). A number is read from its digits, never through a float64: a
// float64 would make two ids past 2^53 one, and ack one batch with
// another's counts.
func (r *reader) batchID(field string) (json.RawMessage, string) {
	raw, ok := r.fields[field]
	if !ok || isNull(raw) {
		r.reject(field, "is required")
		return nil, ""
	}
	raw = bytes.TrimSpace(raw)
	refuse := func() (json.RawMessage, string) {
		r.reject(field, fmt.Sprintf("must be a string of 1 to %d bytes or an integer from 0 to %d", MaxIDBytes, MaxBatchID))
		return nil, ""
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil || s == "" || len(s) > MaxIDBytes {
			return refuse()
		}
		b, _ := json.Marshal(s)
		return b, "s:" + s
	}
	digits, ok := exactInteger(raw)
	if !ok {
		return refuse()
	}
	return json.RawMessage(digits), "n:" + digits
}

// exactInteger returns the decimal digits of raw, a JSON number, when it is
// an integer from 0 to MaxBatchID; it reads the number's text exactly.
func exactInteger(raw []byte) (string, bool) {
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return "", false
	}
	text := string(n)
	negative := strings.HasPrefix(text, "-")
	text = strings.TrimPrefix(text, "-")
	mantissa, exponent, _ := strings.Cut(strings.ToLower(text), "e")
	whole, fraction, _ := strings.Cut(mantissa, ".")
	digits := strings.TrimLeft(whole+fraction, "0")
	if digits == "" {
		return "0", true // 0, -0, 0.0, 0e5
	}
	if negative {
		return "", false
	}
	// value = digits × 10^shift
	shift := -len(fraction)
	if exponent != "" {
		e, err := strconv.Atoi(exponent)
		if err != nil {
			return "", false // an exponent past int: far out of range either way
		}
		shift += e
	}
	trimmed := strings.TrimRight(digits, "0")
	shift += len(digits) - len(trimmed)
	digits = trimmed
	if shift < 0 || len(digits)+shift > len(strconv.Itoa(MaxBatchID)) {
		return "", false // a fraction, or more digits than the largest id
	}
	digits += strings.Repeat("0", shift)
	if v, err := strconv.ParseUint(digits, 10, 64); err != nil || v > MaxBatchID {
		return "", false
	}
	return digits, true
}

// BatchIDOf reads the batchId of a telemetry_batch Parse refused, so that
// it can still be acknowledged. A batchId the protocol accepts is returned
// as Parse reads it. One it refuses (an integer past MaxBatchID, a
// fraction, a string past MaxIDBytes) is returned exactly as sent, so that
// the agent finds the batch it sent in the ack, when it is a JSON string or
// number of at most MaxEchoedBatchIDBytes; false when the frame has none
// such (no batchId, or an object, an array, true or null).
func BatchIDOf(frame []byte) (json.RawMessage, bool) {
	var fields object
	if len(frame) > MaxMessageBytes || json.Unmarshal(frame, &fields) != nil {
		return nil, false
	}
	r := reader{fields: fields, frame: &InvalidFrame{}}
	if id, _ := r.batchID("batchId"); r.err == nil {
		return id, true
	}
	raw := bytes.TrimSpace(fields["batchId"])
	if len(raw) == 0 || len(raw) > MaxEchoedBatchIDBytes || (raw[0] != '"' && raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return nil, false
	}
	var compact bytes.Buffer
	if json.Compact(&compact, raw) != nil {
		return nil, false
	}
	return compact.Bytes(), true
}
