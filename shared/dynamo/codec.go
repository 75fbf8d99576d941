package dynamo

import (
	"encoding/json"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// item is a DynamoDB item. This file is the one codec between items and the
// domain's values: attribute constructors (str, num, millis), readers that
// treat a missing or mistyped attribute as its zero value, and the decoders
// of connection, satellite and assignment items.
type item = map[string]types.AttributeValue

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func millis(t time.Time) types.AttributeValue { return num(t.UnixMilli()) }

func getStr(it item, name string) string {
	if v, ok := it[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getNum(it item, name string) int64 {
	if v, ok := it[name].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

func getMillis(it item, name string) time.Time {
	if n := getNum(it, name); n != 0 {
		return time.UnixMilli(n).UTC()
	}
	return time.Time{}
}

func connectionFrom(it item) satellite.Connection {
	c := satellite.Connection{
		ID:              getStr(it, ConnectionsPartitionKey),
		SatelliteID:     getStr(it, BySatelliteIndexPartKey),
		SatelliteName:   getStr(it, satelliteNameAttr),
		SatelliteRegion: getStr(it, satelliteRegionAttr),
		ConnectedAt:     getMillis(it, UnauthenticatedIndexSortKey),
		AuthenticatedAt: getMillis(it, authenticatedAtAttr),
		TokenGeneration: getNum(it, tokenGenerationAttr),

		OfflineThreshold: time.Duration(getNum(it, connectionThresholdAttr)) * time.Millisecond,
	}
	if exp := getNum(it, ConnectionsTTLAttribute); exp != 0 {
		c.ExpiresAt = time.Unix(exp, 0).UTC()
	}
	return c
}

func satelliteFrom(it item) satellite.Satellite {
	s := satellite.Satellite{
		ID:                  getStr(it, satelliteIDAttr),
		Name:                getStr(it, nameAttr),
		Region:              getStr(it, regionAttr),
		TokenHash:           getStr(it, tokenHashAttr),
		CreatedAt:           getMillis(it, createdAtAttr),
		Version:             getStr(it, agentVersionAttr),
		OfflineThreshold:    time.Duration(getNum(it, satelliteThresholdAttr)) * time.Millisecond,
		LastHeartbeatAt:     getMillis(it, heartbeatAttr),
		LastConnectionEvent: satellite.Edge(getStr(it, lastEdgeAttr)),
		ConnectionID:        getStr(it, currentConnAttr),
		AuthFailures:        int(getNum(it, authFailuresAttr)),
		AuthFailedAt:        getMillis(it, authFailedAtAttr),
		TokenGeneration:     getNum(it, tokenGenerationAttr),
	}
	if s.LastHeartbeatAt.IsZero() {
		s.LastHeartbeatAt = getMillis(it, legacyHeartbeatAttr)
	}
	s.Pending = pendingEdgesFrom(it)
	s.Capabilities = stringsFrom(it, capabilitiesAttr)
	s.HeartbeatLostAt = getMillis(it, heartbeatLostAttr)
	s.Oversized = satellite.OversizedMessages{
		Closes: getNum(it, oversizedClosesAttr), LastAt: getMillis(it, oversizedAtAttr), PreviousAt: getMillis(it, oversizedPrevAtAttr),
	}
	// Satellites stored before the profile item held their tags and sync
	// state here; withProfile overrides them with the profile's.
	readProfile(&s, it)
	return s
}

// withProfile adds what a satellite's profile item holds (nil: none) to s.
func withProfile(s *satellite.Satellite, profile item) {
	if profile != nil {
		readProfile(s, profile)
	}
}

// readProfile reads tags and sync state from it, where present.
func readProfile(s *satellite.Satellite, it item) {
	if tags, ok := it[tagsAttr].(*types.AttributeValueMemberM); ok {
		s.Tags = nil
		if len(tags.Value) > 0 {
			s.Tags = make(map[string]string, len(tags.Value))
		}
		for k := range tags.Value {
			s.Tags[k] = getStr(tags.Value, k)
		}
	}
	if m, ok := it[syncStateAttr].(*types.AttributeValueMemberM); ok {
		st := &satellite.SyncState{
			Status:       satellite.SyncStatus(getStr(m.Value, syncStatusField)),
			ErrorMessage: getStr(m.Value, syncErrorMessageField),
			ReportedAt:   getMillis(m.Value, syncReportedAtField),
		}
		if h, ok := m.Value[syncLockfileHashField].(*types.AttributeValueMemberS); ok {
			st.LockfileHash = aws.String(h.Value)
		}
		s.SyncState = st
	}
}

// pendingEdgesFrom reads the outbox of a satellite item, oldest first.
func pendingEdgesFrom(it item) []satellite.PendingEdge {
	m, ok := it[pendingEdgesAttr].(*types.AttributeValueMemberM)
	if !ok || len(m.Value) == 0 {
		return nil
	}
	lastSeen := getMillis(it, lastSeenAttr)
	out := make([]satellite.PendingEdge, 0, len(m.Value))
	for id, v := range m.Value {
		entry, ok := v.(*types.AttributeValueMemberM)
		if !ok {
			continue
		}
		p := satellite.PendingEdge{
			ID: id, Edge: satellite.Edge(getStr(entry.Value, entryEdgeField)),
			At: getMillis(entry.Value, entryAtField), LastSeenAt: getMillis(entry.Value, entryLastSeenField),
			EdgeMarks: edgeMarksFrom(entry.Value),
		}
		if p.LastSeenAt.IsZero() && p.Edge == satellite.EdgeDisconnected {
			p.LastSeenAt = lastSeen
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// stringList encodes a list of strings (a DynamoDB list: it may be empty,
// unlike a string set, and keeps its order).
func stringList(values []string) types.AttributeValue {
	l := make([]types.AttributeValue, len(values))
	for i, v := range values {
		l[i] = str(v)
	}
	return &types.AttributeValueMemberL{Value: l}
}

// stringsFrom reads a list of strings; nil when the attribute is absent.
func stringsFrom(it item, name string) []string {
	l, ok := it[name].(*types.AttributeValueMemberL)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(l.Value))
	for _, v := range l.Value {
		if s, ok := v.(*types.AttributeValueMemberS); ok {
			out = append(out, s.Value)
		}
	}
	return out
}

// capabilityConfigFrom decodes a capability config item.
func capabilityConfigFrom(it item) (satellite.CapabilityConfig, error) {
	c := satellite.CapabilityConfig{
		Kind:      getStr(it, kindAttr),
		Payload:   json.RawMessage(getStr(it, payloadAttr)),
		UpdatedAt: getMillis(it, updatedAtAttr),
	}
	if raw := getStr(it, secretsAttr); raw != "" {
		if err := json.Unmarshal([]byte(raw), &c.Secrets); err != nil {
			return c, internal(err, "decode stored capability secrets of "+c.Kind)
		}
	}
	return c, nil
}

func assignmentFrom(it item) (satellite.Assignment, error) {
	raw := []byte(getStr(it, assignmentAttr))
	var a satellite.Assignment
	if err := json.Unmarshal(raw, &a); err != nil {
		return satellite.Assignment{}, internal(err, "decode stored assignment "+getStr(it, SatellitesSortKey))
	}
	a.Raw = raw
	a.TokenGeneration = getNum(it, tokenGenerationAttr)
	return a, nil
}
