package admin

// Request decoding for the admin HTTP API: bodies and query strings into
// the service's types, refusing what the API does not accept.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/scriptpkg"
)

// body returns the request body as bytes.
func body(req events.APIGatewayV2HTTPRequest) ([]byte, error) {
	if !req.IsBase64Encoded {
		return []byte(req.Body), nil
	}
	b, err := base64.StdEncoding.DecodeString(req.Body)
	if err != nil {
		return nil, satellite.Errorf(satellite.EMALFORMED, "body is not valid base64")
	}
	return b, nil
}

// object decodes the body as a JSON object of raw fields, refusing fields
// not in allowed.
func object(req events.APIGatewayV2HTTPRequest, allowed ...string) (map[string]json.RawMessage, error) {
	b, err := body(req)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil || fields == nil {
		return nil, satellite.Errorf(satellite.EMALFORMED, "body must be a JSON object")
	}
	for name := range fields {
		known := false
		for _, a := range allowed {
			known = known || a == name
		}
		if !known {
			return nil, satellite.Errorf(satellite.EINVALID, "unknown field %q (allowed: %s)", name, strings.Join(allowed, ", "))
		}
	}
	return fields, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

var regionPattern = regexp.MustCompile(fmt.Sprintf(`^[a-z0-9][a-z0-9-]{0,%d}$`, satellite.MaxRegionLength-1))

func decodeString(fields map[string]json.RawMessage, name string, required bool, max int) (*string, error) {
	raw, ok := fields[name]
	if !ok {
		if required {
			return nil, satellite.Errorf(satellite.EINVALID, "%s is required", name)
		}
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, satellite.Errorf(satellite.EINVALID, "%s must be a string", name)
	}
	s = strings.TrimSpace(s)
	if s == "" || len(s) > max {
		return nil, satellite.Errorf(satellite.EINVALID, "%s must be 1 to %d characters", name, max)
	}
	if err := plainText(name, s); err != nil {
		return nil, err
	}
	return &s, nil
}

// plainText refuses text an operator would not see as written: invalid
// UTF-8, control characters (NUL among them), and the invisible characters
// that reorder or hide what follows them (bidirectional overrides and
// isolates, zero-width marks). Names and tags are shown in tables and
// logs, where those would mislead.
func plainText(field, s string) error {
	if !utf8.ValidString(s) {
		return satellite.Errorf(satellite.EINVALID, "%s is not valid UTF-8", field)
	}
	for _, r := range s {
		switch {
		case unicode.IsControl(r):
			return satellite.Errorf(satellite.EINVALID, "%s must not contain control characters (U+%04X)", field, r)
		case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F, r == 0x061C,
			r >= 0x200B && r <= 0x200D, r == 0xFEFF:
			return satellite.Errorf(satellite.EINVALID, "%s must not contain invisible or direction-changing characters (U+%04X)", field, r)
		}
	}
	return nil
}

func decodeTags(fields map[string]json.RawMessage) (*map[string]string, error) {
	raw, ok := fields["tags"]
	if !ok || isNull(raw) {
		return nil, nil
	}
	var tags map[string]string
	if err := json.Unmarshal(raw, &tags); err != nil {
		return nil, satellite.Errorf(satellite.EINVALID, "tags must be an object of string values")
	}
	if len(tags) > satellite.MaxTags {
		return nil, satellite.Errorf(satellite.EINVALID, "tags can hold at most %d entries", satellite.MaxTags)
	}
	for k, v := range tags {
		if k == "" || len(k) > satellite.MaxTagKeyLength || len(v) > satellite.MaxTagValueLength {
			return nil, satellite.Errorf(satellite.EINVALID, "tags.%s: keys are 1 to %d characters, values at most %d", k, satellite.MaxTagKeyLength, satellite.MaxTagValueLength)
		}
		if err := plainText("tags key", k); err != nil {
			return nil, err
		}
		if err := plainText("tags."+k, v); err != nil {
			return nil, err
		}
	}
	return &tags, nil
}

// decodeThreshold reads offlineThresholdMs: absent (nil, false), null
// (nil, true) or a number in range.
func decodeThreshold(fields map[string]json.RawMessage) (*time.Duration, bool, error) {
	raw, ok := fields["offlineThresholdMs"]
	if !ok {
		return nil, false, nil
	}
	if isNull(raw) {
		return nil, true, nil
	}
	var ms float64
	if err := json.Unmarshal(raw, &ms); err != nil || ms != math.Trunc(ms) {
		return nil, false, satellite.Errorf(satellite.EINVALID, "offlineThresholdMs must be a whole number of milliseconds")
	}
	// The range is checked on the number as sent: converted first, a huge
	// value would wrap around into the range.
	if ms < float64(MinOfflineThreshold.Milliseconds()) || ms > float64(MaxOfflineThreshold.Milliseconds()) {
		return nil, false, satellite.Errorf(satellite.EINVALID, "offlineThresholdMs must be between %d (15 s) and %d (24 h)", MinOfflineThreshold.Milliseconds(), MaxOfflineThreshold.Milliseconds())
	}
	d := time.Duration(ms) * time.Millisecond
	return &d, false, nil
}

func decodeNewSatellite(req events.APIGatewayV2HTTPRequest) (NewSatellite, error) {
	fields, err := object(req, "name", "region", "tags", "offlineThresholdMs")
	if err != nil {
		return NewSatellite{}, err
	}
	name, err := decodeString(fields, "name", true, satellite.MaxNameLength)
	if err != nil {
		return NewSatellite{}, err
	}
	region, err := decodeString(fields, "region", true, satellite.MaxRegionLength)
	if err != nil {
		return NewSatellite{}, err
	}
	if !regionPattern.MatchString(*region) {
		return NewSatellite{}, satellite.Errorf(satellite.EINVALID, "region must be lower-case letters, digits and '-' (e.g. eu-central-1)")
	}
	tags, err := decodeTags(fields)
	if err != nil {
		return NewSatellite{}, err
	}
	threshold, _, err := decodeThreshold(fields)
	if err != nil {
		return NewSatellite{}, err
	}
	n := NewSatellite{Name: *name, Region: *region, Tags: map[string]string{}}
	if tags != nil {
		n.Tags = *tags
	}
	if threshold != nil {
		n.OfflineThreshold = *threshold
	}
	return n, nil
}

func decodeUpdate(req events.APIGatewayV2HTTPRequest) (satellite.Update, error) {
	fields, err := object(req, "name", "region", "tags", "offlineThresholdMs")
	if err != nil {
		return satellite.Update{}, err
	}
	if len(fields) == 0 {
		return satellite.Update{}, satellite.Errorf(satellite.EINVALID, "give at least one of name, region, tags, offlineThresholdMs")
	}
	var u satellite.Update
	if u.Name, err = decodeString(fields, "name", false, satellite.MaxNameLength); err != nil {
		return u, err
	}
	if u.Region, err = decodeString(fields, "region", false, satellite.MaxRegionLength); err != nil {
		return u, err
	}
	if u.Region != nil && !regionPattern.MatchString(*u.Region) {
		return u, satellite.Errorf(satellite.EINVALID, "region must be lower-case letters, digits and '-' (e.g. eu-central-1)")
	}
	if raw, ok := fields["tags"]; ok && isNull(raw) {
		empty := map[string]string{}
		u.Tags = &empty
	} else if u.Tags, err = decodeTags(fields); err != nil {
		return u, err
	}
	u.OfflineThreshold, u.ClearThreshold, err = decodeThreshold(fields)
	return u, err
}

func decodeAssignments(req events.APIGatewayV2HTTPRequest) ([]satellite.Assignment, error) {
	fields, err := object(req, "assignments")
	if err != nil {
		return nil, err
	}
	raw, ok := fields["assignments"]
	if !ok {
		return nil, satellite.Errorf(satellite.EINVALID, "assignments is required (an array; [] removes all)")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, satellite.Errorf(satellite.EINVALID, "assignments must be an array")
	}
	out := make([]satellite.Assignment, 0, len(items))
	seen := map[[2]string]bool{}
	for i, item := range items {
		a, err := satellite.ParseAssignment(item)
		if err != nil {
			return nil, satellite.Errorf(satellite.EINVALID, "assignments[%d]: %s", i, strings.TrimPrefix(satellite.ErrorMessage(err), "assignment."))
		}
		key := [2]string{a.ConfigID, a.SystemID}
		if seen[key] {
			return nil, satellite.Errorf(satellite.EINVALID, "assignments[%d]: configId %s systemId %s is assigned twice", i, a.ConfigID, a.SystemID)
		}
		seen[key] = true
		for j, c := range a.Collectors {
			if _, ok := c.Config["secretEnv"]; ok {
				if _, err := c.SecretEnv(); err != nil && satellite.ErrorCode(err) == satellite.EINVALID {
					return nil, satellite.Errorf(satellite.EINVALID, "assignments[%d].collectors[%d].config.secretEnv: %s", i, j, satellite.ErrorMessage(err))
				}
			}
		}
		out = append(out, a)
	}
	// A satellite receives its whole set in one message (authenticated,
	// config_updated), which API Gateway limits to 128 KB: sized with the
	// longest lockfile hash and satellite id.
	frame, _ := json.Marshal(protocol.NewConfigUpdated(out, protocol.LockfileHash{Configured: true, Hash: &maxHash}))
	if len(frame)+len(`"satelliteId":"","type":"authenticated","maxMessageBytes":131072`)+satellite.MaxIDLength > protocol.MaxMessageBytes {
		return nil, satellite.Errorf(satellite.EINVALID, "assignments take %d bytes; a satellite receives them in one message of at most %d", len(frame), protocol.MaxMessageBytes)
	}
	return out, nil
}

// maxHash stands for the longest lockfile hash when sizing a message.
var maxHash = strings.Repeat("0", satellite.MaxLockfileHashLength)

var (
	packageNamePattern = regexp.MustCompile(fmt.Sprintf(`^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]{0,%d}$`, MaxPackageNameLength-1))
	// A version is a semver-like token: it names a file in a satellite's
	// package store, so no "/" and no "..".
	packageVersionPattern = regexp.MustCompile(fmt.Sprintf(`^[0-9A-Za-z][0-9A-Za-z.+_-]{0,%d}$`, MaxPackageVersionLength-1))
)

func validVersion(v string) bool {
	return packageVersionPattern.MatchString(v) && !strings.Contains(v, "..")
}

func decodePackages(req events.APIGatewayV2HTTPRequest) ([]Package, error) {
	fields, err := object(req, "packages", "allowEmpty")
	if err != nil {
		return nil, err
	}
	var items []struct {
		Name      *string `json:"name"`
		Version   *string `json:"version"`
		Integrity *string `json:"integrity"`
		Data      *string `json:"data"`
	}
	raw, ok := fields["packages"]
	if !ok {
		return nil, satellite.Errorf(satellite.EINVALID, "packages is required: [{name, version, integrity?, data (base64)}]")
	}
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, satellite.Errorf(satellite.EINVALID, "packages must be an array of {name, version, integrity?, data}")
	}
	// Publishing replaces the whole desired set: an empty list would remove
	// every package from every satellite, so it must be asked for.
	var allowEmpty bool
	if raw, ok := fields["allowEmpty"]; ok && json.Unmarshal(raw, &allowEmpty) != nil {
		return nil, satellite.Errorf(satellite.EINVALID, "allowEmpty must be true or false")
	}
	if len(items) == 0 && !allowEmpty {
		return nil, satellite.Errorf(satellite.EINVALID, "packages is empty: publishing replaces the whole set, so this would remove every package from every satellite; send \"allowEmpty\": true to mean it")
	}
	seen := map[string]bool{}
	out := make([]Package, 0, len(items))
	for i, it := range items {
		switch {
		case it.Name == nil || !packageNamePattern.MatchString(*it.Name):
			return nil, satellite.Errorf(satellite.EINVALID, "packages[%d].name must be an npm-style package name", i)
		case it.Version == nil || !validVersion(*it.Version):
			return nil, satellite.Errorf(satellite.EINVALID, "packages[%d].version must be 1 to %d letters, digits, '.', '+', '_' or '-', with no '..'", i, MaxPackageVersionLength)
		case it.Data == nil:
			return nil, satellite.Errorf(satellite.EINVALID, "packages[%d].data is required (the package bytes, base64)", i)
		}
		data, err := decodeBase64(*it.Data)
		if err != nil {
			return nil, satellite.Errorf(satellite.EINVALID, "packages[%d].data is not base64", i)
		}
		if it.Integrity != nil {
			if _, _, err := scriptpkg.ParseIntegrity(*it.Integrity); err != nil {
				return nil, satellite.Errorf(satellite.EINVALID, "packages[%d].integrity is not a sha256, sha384 or sha512 SRI value", i)
			}
			if !scriptpkg.VerifyIntegrity(*it.Integrity, data) {
				return nil, satellite.Errorf(satellite.EINVALID, "packages[%d].integrity does not match its data", i)
			}
		}
		key := *it.Name + "@" + *it.Version
		if seen[key] {
			return nil, satellite.Errorf(satellite.EINVALID, "packages[%d]: %s appears twice", i, key)
		}
		seen[key] = true
		p := Package{Name: *it.Name, Version: *it.Version, Data: data}
		if it.Integrity != nil {
			p.Integrity = *it.Integrity
		}
		out = append(out, p)
	}
	return out, nil
}

// compactJSON validates and compacts an opaque JSON value, at most max
// bytes compacted and nesting at most protocol.MaxResultDepth.
func compactJSON(name string, raw json.RawMessage, max int) (json.RawMessage, error) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, satellite.Errorf(satellite.EINVALID, "%s is not valid JSON", name)
	}
	if compact.Len() > max {
		return nil, satellite.Errorf(satellite.ETOOLARGE, "%s is %d bytes, over the %d byte limit", name, compact.Len(), max)
	}
	if protocol.Depth(compact.Bytes()) > protocol.MaxResultDepth {
		return nil, satellite.Errorf(satellite.EINVALID, "%s nests deeper than %d levels", name, protocol.MaxResultDepth)
	}
	return compact.Bytes(), nil
}

// decodeSandboxPolicy reads PUT /sandbox-policy: the policy itself, a JSON
// object the backend does not interpret.
func decodeSandboxPolicy(req events.APIGatewayV2HTTPRequest) (json.RawMessage, error) {
	b, err := body(req)
	if err != nil {
		return nil, err
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(b, &probe) != nil || probe == nil {
		return nil, satellite.Errorf(satellite.EMALFORMED, "body must be the policy: a JSON object")
	}
	return compactJSON("policy", b, satellite.MaxSandboxPolicyBytes)
}

// secretFieldPattern names a field of a bound resource.
var secretFieldPattern = regexp.MustCompile(fmt.Sprintf(`^[A-Za-z_][A-Za-z0-9_.-]{0,%d}$`, satellite.MaxSecretFieldLength-1))

// decodeCapabilityConfig reads PUT /satellites/{id}/capabilities/{kind}:
// {payload, secrets?}, secrets being resource id -> field -> secret
// reference.
func decodeCapabilityConfig(req events.APIGatewayV2HTTPRequest) (satellite.CapabilityConfig, error) {
	kind := req.PathParameters["kind"]
	if !protocol.ValidName(kind) {
		return satellite.CapabilityConfig{}, satellite.Errorf(satellite.EINVALID, "kind %q is not a capability kind (1 to %d letters, digits, '.', '_', '-')", kind, protocol.MaxNameBytes)
	}
	fields, err := object(req, "payload", "secrets")
	if err != nil {
		return satellite.CapabilityConfig{}, err
	}
	raw, ok := fields["payload"]
	if !ok || isNull(raw) {
		return satellite.CapabilityConfig{}, satellite.Errorf(satellite.EINVALID, "payload is required (what capability_config carries)")
	}
	payload, err := compactJSON("payload", raw, satellite.MaxCapabilityPayloadBytes)
	if err != nil {
		return satellite.CapabilityConfig{}, err
	}
	cfg := satellite.CapabilityConfig{Kind: kind, Payload: payload, Secrets: map[string]map[string]string{}}
	if raw, ok := fields["secrets"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &cfg.Secrets) != nil {
			return satellite.CapabilityConfig{}, satellite.Errorf(satellite.EINVALID, "secrets must be an object: resource id -> {field: secret reference}")
		}
	}
	if n := len(fields["secrets"]); n > satellite.MaxCapabilityPayloadBytes {
		return satellite.CapabilityConfig{}, satellite.Errorf(satellite.ETOOLARGE, "secrets is %d bytes, over the %d byte limit", n, satellite.MaxCapabilityPayloadBytes)
	}
	if len(cfg.Secrets) > satellite.MaxCapabilityResources {
		return satellite.CapabilityConfig{}, satellite.Errorf(satellite.EINVALID, "secrets binds more than %d resources", satellite.MaxCapabilityResources)
	}
	for resource, refs := range cfg.Secrets {
		if resource == "" || len(resource) > protocol.MaxIDBytes {
			return satellite.CapabilityConfig{}, satellite.Errorf(satellite.EINVALID, "secrets: resource ids must be 1 to %d bytes", protocol.MaxIDBytes)
		}
		if len(refs) == 0 || len(refs) > satellite.MaxSecretFields {
			return satellite.CapabilityConfig{}, satellite.Errorf(satellite.EINVALID, "secrets.%s must bind 1 to %d fields", resource, satellite.MaxSecretFields)
		}
		for field, ref := range refs {
			if !secretFieldPattern.MatchString(field) {
				return satellite.CapabilityConfig{}, satellite.Errorf(satellite.EINVALID, "secrets.%s: %q is not a field name", resource, field)
			}
			if _, ok := satellite.SecretRef(ref); !ok {
				return satellite.CapabilityConfig{}, satellite.Errorf(satellite.EINVALID, "secrets.%s.%s must be a secret reference ${{ secrets.NAME }}, never a value", resource, field)
			}
		}
	}
	return cfg, nil
}

// decodeTelemetryQuery reads GET /telemetry?satelliteId=&kind=&since=&until=&limit=.
func decodeTelemetryQuery(req events.APIGatewayV2HTTPRequest, now time.Time, kinds []string) (satellite.TelemetryQuery, error) {
	q := req.QueryStringParameters
	tq := satellite.TelemetryQuery{Until: now.UTC(), Since: now.UTC().Add(-satellite.DefaultTelemetryWindow), Limit: satellite.DefaultTelemetryLimit}
	if v, ok := q["satelliteId"]; ok {
		if !satellite.ValidSatelliteID(v) {
			return tq, satellite.Errorf(satellite.EINVALID, "satelliteId is not a satellite id")
		}
		tq.SatelliteID = v
	}
	if v, ok := q["kind"]; ok {
		known := false
		for _, k := range kinds {
			known = known || k == v
		}
		if !known {
			return tq, satellite.Errorf(satellite.EINVALID, "kind %q is not stored (stored kinds: %s)", v, strings.Join(kinds, ", "))
		}
		tq.Kinds = []string{v}
	}
	for name, at := range map[string]*time.Time{"since": &tq.Since, "until": &tq.Until} {
		if v, ok := q[name]; ok {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return tq, satellite.Errorf(satellite.EINVALID, "%s must be an RFC 3339 time", name)
			}
			*at = t.UTC()
		}
	}
	if tq.Since.After(tq.Until) {
		return tq, satellite.Errorf(satellite.EINVALID, "since is after until")
	}
	if tq.Until.Sub(tq.Since) > MaxTelemetryDays*24*time.Hour {
		return tq, satellite.Errorf(satellite.EINVALID, "since and until are more than %d days apart", MaxTelemetryDays)
	}
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > satellite.MaxTelemetryLimit {
			return tq, satellite.Errorf(satellite.EINVALID, "limit must be an integer from 1 to %d", satellite.MaxTelemetryLimit)
		}
		tq.Limit = n
	}
	return tq, nil
}

// decodeResultsQuery reads GET /results?configId=&systemId=&environmentId=&limit=.
func decodeResultsQuery(q map[string]string) (configID, systemID string, environmentID *string, limit int32, err error) {
	configID, systemID = q["configId"], q["systemId"]
	if configID == "" || systemID == "" {
		return "", "", nil, 0, satellite.Errorf(satellite.EINVALID, "query parameters configId and systemId are required")
	}
	limit = int32(satellite.DefaultResultsLimit)
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > satellite.MaxResultsLimit {
			return "", "", nil, 0, satellite.Errorf(satellite.EINVALID, "limit must be an integer from 1 to %d", satellite.MaxResultsLimit)
		}
		limit = int32(n)
	}
	if v, ok := q["environmentId"]; ok {
		if v == "" || len(v) > protocol.MaxIDBytes {
			return "", "", nil, 0, satellite.Errorf(satellite.EINVALID, "environmentId must be 1 to %d bytes", protocol.MaxIDBytes)
		}
		environmentID = &v
	}
	return configID, systemID, environmentID, limit, nil
}
