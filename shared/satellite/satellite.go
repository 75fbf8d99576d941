// Package satellite holds the domain of the satellite endpoint: satellites,
// their assignments and connections, liveness and lifecycle edges, run-secret
// references, the one application error type, and the ports that adapters
// (DynamoDB, S3, the API Gateway Management API, Secrets Manager, EventBridge)
// implement. It imports no AWS package.
package satellite

import (
	"fmt"
	"regexp"
	"time"
)

// DefaultOfflineThreshold is how long a satellite stays online after its last
// heartbeat when it has no per-satellite override.
const DefaultOfflineThreshold = 45 * time.Second

// AgentHeartbeatInterval is how often the Checkstack satellite agent
// heartbeats (HEARTBEAT_INTERVAL_MS in upstream's
// core/satellite-common/src/constants.ts, fixed). It is the shortest offline
// threshold an operator may set (a shorter one reads a healthy satellite
// offline between two heartbeats) and what the live index's rounding is
// sized against.
const AgentHeartbeatInterval = 15 * time.Second

// MaxConnectionDuration is API Gateway's hard limit on one WebSocket
// connection. Connection records live a little longer than this so that a
// record whose $disconnect never arrived still expires on its own.
const MaxConnectionDuration = 2 * time.Hour

// ConnectionRecordTTL is how long after connectedAt a connection record is
// treated as gone: past the 2 h maximum, with margin for clock skew.
const ConnectionRecordTTL = MaxConnectionDuration + 10*time.Minute

// Edge is a lifecycle edge. The connection edges are stored as a
// satellite's lastConnectionEvent; EdgeRemoved is its deletion.
type Edge string

// Lifecycle edges: the connection edges from PROTOCOL.md, and the removal
// of a satellite (upstream Checkstack's satellite.removed), which the core
// uses to scrub the satellite from its assignments.
const (
	EdgeConnected     Edge = "connected"
	EdgeDisconnected  Edge = "disconnected"
	EdgeHeartbeatLost Edge = "heartbeat_lost"
	EdgeRemoved       Edge = "removed"
)

// EventType is the lifecycle event name ("satellite.connected", ...) that the
// edge fires.
func (e Edge) EventType() string { return "satellite." + string(e) }

// Status is computed from the stored heartbeat, never stored.
type Status string

// Statuses a satellite can read as.
const (
	StatusOnline  Status = "online"
	StatusOffline Status = "offline"
)

// StatusAt returns online while now - lastHeartbeat <= threshold and offline
// otherwise, or when there has been no heartbeat (zero time).
func StatusAt(now, lastHeartbeat time.Time, threshold time.Duration) Status {
	if lastHeartbeat.IsZero() {
		return StatusOffline
	}
	if now.Sub(lastHeartbeat) <= threshold {
		return StatusOnline
	}
	return StatusOffline
}

// Bounds of what names a satellite and what an operator gives it: the
// admin API refuses more.
const (
	// MaxIDLength bounds a satellite's id (see ValidSatelliteID).
	MaxIDLength = 128
	// MaxNameLength and MaxRegionLength bound its name and region, in
	// bytes.
	MaxNameLength   = 128
	MaxRegionLength = 64
	// MaxTags bounds its tags; MaxTagKeyLength and MaxTagValueLength
	// bound each one, in bytes.
	MaxTags           = 50
	MaxTagKeyLength   = 128
	MaxTagValueLength = 256
)

// Satellite is one remote agent as stored by the backend.
type Satellite struct {
	ID        string
	Name      string
	Region    string
	Tags      map[string]string
	TokenHash string // bcrypt; never logged, never sent
	CreatedAt time.Time
	Version   string // agent version from the last heartbeat
	// OfflineThreshold overrides DefaultOfflineThreshold when non-zero.
	OfflineThreshold time.Duration
	// LastHeartbeatAt is zero when the satellite has no live heartbeat (never
	// connected, or its connection closed cleanly).
	LastHeartbeatAt     time.Time
	LastConnectionEvent Edge
	// ConnectionID is the satellite's current connection: the newest one that
	// authenticated, empty when none.
	ConnectionID string
	SyncState    *SyncState
	// Pending are edges stored but not yet confirmed published, oldest
	// first.
	Pending []PendingEdge
	// AuthFailures counts wrong tokens since the last successful
	// authentication, the latest at AuthFailedAt.
	AuthFailures int
	AuthFailedAt time.Time
	// TokenGeneration counts the satellite's token rotations (and its
	// deletion). A connection carries the generation it authenticated with;
	// once the satellite's has moved on, the connection's frames have no
	// authority (results, run secrets) even before it is closed.
	TokenGeneration int64
	// HeartbeatLostAt is when the sweep found the satellite's heartbeats
	// stopped (heartbeat_lost), kept through a disconnect until its next
	// connected edge, which is then marked recovered; zero otherwise.
	HeartbeatLostAt time.Time
	// Oversized records its connections closed for a message over API
	// Gateway's limit.
	Oversized OversizedMessages
	// Capabilities is what the agent last said it offers (authenticate or
	// heartbeat), sorted; nil when it never said, empty when it said it
	// offers nothing. A frame without the field leaves it as it is.
	Capabilities []string
	// CapabilityConfigs are the operator's configs per capability kind,
	// read with the satellite (Registry.Satellite).
	CapabilityConfigs []CapabilityConfig
}

// Authentication back-off: after FreeAuthFailures wrong tokens in a row, a
// satellite's next attempt waits a second, doubling with every further
// failure up to MaxAuthBackoff; attempts inside the wait are refused without
// checking the token (they cost what any refusal costs, a bcrypt against a
// decoy) and are not counted. A success resets it.
const (
	FreeAuthFailures = 5
	MaxAuthBackoff   = 30 * time.Second
)

// AuthBackoffUntil returns until when authentication attempts for s are
// refused unchecked (zero when they are not).
func (s Satellite) AuthBackoffUntil() time.Time {
	if s.AuthFailures < FreeAuthFailures || s.AuthFailedAt.IsZero() {
		return time.Time{}
	}
	wait := MaxAuthBackoff
	if n := s.AuthFailures - FreeAuthFailures; n < 5 {
		wait = min(time.Second<<n, MaxAuthBackoff)
	}
	return s.AuthFailedAt.Add(wait)
}

// Threshold returns the satellite's effective offline threshold.
func (s Satellite) Threshold() time.Duration {
	if s.OfflineThreshold > 0 {
		return s.OfflineThreshold
	}
	return DefaultOfflineThreshold
}

// StatusAt returns the satellite's status at now: online while it is marked
// connected and its last heartbeat is within its threshold. A satellite the
// sweep marked heartbeat_lost stays offline until it heartbeats again, even
// if its threshold is raised meanwhile, so this view, the online listing and
// the sweep agree.
func (s Satellite) StatusAt(now time.Time) Status {
	if s.LastConnectionEvent != EdgeConnected {
		return StatusOffline
	}
	return StatusAt(now, s.LastHeartbeatAt, s.Threshold())
}

// SourceLabel is how results name the satellite that produced them.
func (s Satellite) SourceLabel() string { return SourceLabel(s.Name, s.Region) }

// SourceLabel formats a result's source as "name (region)".
func SourceLabel(name, region string) string { return fmt.Sprintf("%s (%s)", name, region) }

var satelliteIDPattern = regexp.MustCompile(fmt.Sprintf(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,%d}$`, MaxIDLength-1))

// lockfileHashFormat is what a lockfile hash may look like: what this
// backend publishes (hex SHA-256) and other hashes of the same alphabet,
// safe in an object key.
var lockfileHashFormat = regexp.MustCompile(fmt.Sprintf(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,%d}$`, MaxLockfileHashLength-1))

// MaxLockfileHashLength bounds a lockfile hash.
const MaxLockfileHashLength = 200

// ValidLockfileHash reports whether h has the format of a lockfile hash.
func ValidLockfileHash(h string) bool { return lockfileHashFormat.MatchString(h) }

// ValidSatelliteID reports whether id can name a satellite. Anything else is
// rejected before it reaches a store key.
func ValidSatelliteID(id string) bool { return satelliteIDPattern.MatchString(id) }

// SyncStatus is a satellite's script-package reconcile state.
type SyncStatus string

// Sync statuses from PROTOCOL.md.
const (
	SyncPending SyncStatus = "pending"
	SyncSyncing SyncStatus = "syncing"
	SyncReady   SyncStatus = "ready"
	SyncError   SyncStatus = "error"
)

// Valid reports whether s is one of the protocol's sync statuses.
func (s SyncStatus) Valid() bool {
	switch s {
	case SyncPending, SyncSyncing, SyncReady, SyncError:
		return true
	}
	return false
}

// SyncState is what a satellite last reported about its script packages.
type SyncState struct {
	LockfileHash *string // nil: the satellite has no lockfile
	Status       SyncStatus
	ErrorMessage string
	ReportedAt   time.Time
}

// Connection is one WebSocket connection as recorded by $connect and bound to
// a satellite by a successful authenticate.
type Connection struct {
	ID          string
	SatelliteID string // empty until authenticated
	// TokenGeneration is the satellite's token generation when the
	// connection authenticated.
	TokenGeneration int64
	// SatelliteName and SatelliteRegion are copied at authentication so a
	// result can be labelled without reading the satellite item.
	SatelliteName   string
	SatelliteRegion string
	// OfflineThreshold is the satellite's threshold override when the
	// connection authenticated (0: none), copied so that a heartbeat can
	// round its key in the sweep's index without reading the satellite. A
	// later change by an operator makes it stale until the satellite
	// reconnects, which costs index writes or sweep reads, never a late or
	// early heartbeat_lost.
	OfflineThreshold time.Duration
	ConnectedAt      time.Time
	AuthenticatedAt  time.Time
	ExpiresAt        time.Time
}

// Authenticated reports whether a satellite has authenticated on c.
func (c Connection) Authenticated() bool { return c.SatelliteID != "" }

// Expired reports whether c is past its expiry at now. Storage TTL deletion is
// lazy, so readers must treat an expired record as gone themselves.
func (c Connection) Expired(now time.Time) bool {
	return !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt)
}

// CheckStatus is the outcome a result reports.
type CheckStatus string

// Result statuses from PROTOCOL.md.
const (
	CheckHealthy   CheckStatus = "healthy"
	CheckUnhealthy CheckStatus = "unhealthy"
	CheckDegraded  CheckStatus = "degraded"
)

// Valid reports whether s is a protocol result status.
func (s CheckStatus) Valid() bool {
	switch s {
	case CheckHealthy, CheckUnhealthy, CheckDegraded:
		return true
	}
	return false
}

// A listing of a check's latest results returns DefaultResultsLimit
// results unless asked for up to MaxResultsLimit.
const (
	DefaultResultsLimit = 20
	MaxResultsLimit     = 100
)

// Result is one health-check run reported by a satellite and accepted.
type Result struct {
	ID          string // unique per accepted result (the API Gateway request id)
	ConfigID    string
	SystemID    string
	SatelliteID string
	Source      string // "name (region)"
	Status      CheckStatus
	LatencyMs   *float64
	Detail      []byte // the result object as sent, JSON; nil when absent
	// EnvironmentID is the environment of the run; nil for an
	// environment-less run. It must be one its assignment lists.
	EnvironmentID *string
	// ExecutedAt is when the satellite ran the check, by its clock, as
	// sent; ReceivedAt when the backend accepted the result.
	ExecutedAt time.Time
	ReceivedAt time.Time
	ExpiresAt  time.Time
	// ClockSkewMs marks a result dated too far ahead of the backend's
	// clock to be ordered by its ExecutedAt: how far ahead of ReceivedAt
	// it was, in milliseconds; 0 for any other result. A marked result is
	// ordered by its ReceivedAt (see OrderedAt).
	ClockSkewMs int64
	// TokenGeneration is the generation the reporting connection
	// authenticated with: a result of a revoked connection is refused.
	TokenGeneration int64
}

// OrderedAt is when the result happened for ordering a check's results
// (which one is the latest): its ExecutedAt, or its ReceivedAt when it is
// marked as dated ahead, so that a satellite whose clock runs fast never
// makes its results read as the latest for as long as its clock is ahead.
func (r Result) OrderedAt() time.Time {
	if r.ClockSkewMs > 0 {
		return r.ReceivedAt
	}
	return r.ExecutedAt
}
