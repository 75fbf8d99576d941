package satellite

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// LifecycleEvent is a satellite.connected, satellite.disconnected,
// satellite.heartbeat_lost or satellite.removed event.
type LifecycleEvent struct {
	// ID is stable per edge: publishing the same edge twice (a retry, two
	// sweeps, a recovered crash) gives the same id, so consumers can drop
	// duplicates.
	ID          string
	Edge        Edge
	SatelliteID string
	Name        string
	Region      string
	Status      Status
	LastSeenAt  time.Time // zero when never seen
	At          time.Time // when the edge happened
	EdgeMarks
}

// EdgeID derives an edge's id from what makes the edge unique: the
// satellite, the edge, and a discriminator (the connection for connected and
// disconnected, the heartbeat deadline that passed for heartbeat_lost, the
// satellite's creation for removed).
func EdgeID(satelliteID string, edge Edge, discriminator string) string {
	sum := sha256.Sum256([]byte(satelliteID + "\x00" + string(edge) + "\x00" + discriminator))
	return hex.EncodeToString(sum[:16])
}

// PendingEdge is an edge that is stored but whose event is not yet known to
// be published (the outbox): the writer of the edge publishes and confirms
// it, and the sweep publishes again what stays unconfirmed.
type PendingEdge struct {
	ID         string
	Edge       Edge
	At         time.Time
	LastSeenAt time.Time
	EdgeMarks
}

// LifecyclePayload is the documented event payload:
// {satelliteId, name, region, status, lastSeenAt}, plus edgeId, plus the
// edge's marks, each present only when it applies.
type LifecyclePayload struct {
	EdgeID      string  `json:"edgeId"`
	SatelliteID string  `json:"satelliteId"`
	Name        string  `json:"name"`
	Region      string  `json:"region"`
	Status      Status  `json:"status"`
	LastSeenAt  *string `json:"lastSeenAt"` // ISO 8601, null when never seen
	// CloseCode and Reason: a disconnected edge's close, as $disconnect
	// reported it (Reason only for CloseMessageTooBig: message_too_big).
	CloseCode int    `json:"closeCode,omitempty"`
	Reason    string `json:"reason,omitempty"`
	// Recovered: a connected edge that ends a heartbeat_lost.
	Recovered bool `json:"recovered,omitempty"`
	// Flapping and ReconnectAfterMs: a connected edge within FlapWindow of
	// a close for a message over the limit.
	Flapping         bool   `json:"flapping,omitempty"`
	ReconnectAfterMs *int64 `json:"reconnectAfterMs,omitempty"`
}

// Payload returns the event's documented payload.
func (e LifecycleEvent) Payload() LifecyclePayload {
	p := LifecyclePayload{EdgeID: e.ID, SatelliteID: e.SatelliteID, Name: e.Name, Region: e.Region, Status: e.Status,
		CloseCode: e.CloseCode, Recovered: e.Recovered, Flapping: e.Flapping}
	if !e.LastSeenAt.IsZero() {
		s := e.LastSeenAt.UTC().Format(time.RFC3339Nano)
		p.LastSeenAt = &s
	}
	if e.CloseCode == CloseMessageTooBig {
		p.Reason = ReasonMessageTooBig
	}
	if e.Flapping {
		ms := e.ReconnectAfter.Milliseconds()
		p.ReconnectAfterMs = &ms
	}
	return p
}

// NewLifecycleEvent describes sat taking edge at time at; discriminator
// makes the edge's id (see EdgeID). lastSeen is the satellite's last sign of
// life (zero when none).
func NewLifecycleEvent(edge Edge, discriminator string, sat Satellite, lastSeen, at time.Time) LifecycleEvent {
	return LifecycleEvent{
		ID: EdgeID(sat.ID, edge, discriminator), Edge: edge, SatelliteID: sat.ID, Name: sat.Name, Region: sat.Region,
		Status: edge.Status(), LastSeenAt: lastSeen, At: at,
	}
}

// Status is the status a satellite has just after taking the edge (a
// removed satellite is offline).
func (e Edge) Status() Status {
	if e == EdgeConnected {
		return StatusOnline
	}
	return StatusOffline
}

// PendingEvents returns the events of the satellite's unconfirmed edges,
// oldest first.
func (s Satellite) PendingEvents() []LifecycleEvent {
	out := make([]LifecycleEvent, 0, len(s.Pending))
	for _, p := range s.Pending {
		out = append(out, LifecycleEvent{
			ID: p.ID, Edge: p.Edge, SatelliteID: s.ID, Name: s.Name, Region: s.Region,
			Status: p.Edge.Status(), LastSeenAt: p.LastSeenAt, At: p.At, EdgeMarks: p.EdgeMarks,
		})
	}
	return out
}
