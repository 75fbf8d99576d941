package satellite

import (
	"context"
	"encoding/json"
	"time"
)

// Registry is the durable state the endpoint reads and writes: connection
// records, satellites with their assignments, results and the desired script
// package lockfile. Every state change two Lambdas could race on is a
// conditional write inside the implementation.
type Registry interface {
	// OpenConnection records a new, unauthenticated connection.
	OpenConnection(ctx context.Context, c Connection) error
	// Connection returns a connection record. ENOTFOUND when there is none or
	// it has expired.
	Connection(ctx context.Context, connectionID string, now time.Time) (Connection, error)
	// ClaimAuthentication records that an authentication is attempted on
	// connectionID and returns its record: a connection gets one attempt,
	// claimed before any token is checked. ECONFLICT (with the record) when
	// one was already claimed; ENOTFOUND when there is no live record.
	ClaimAuthentication(ctx context.Context, connectionID string, now time.Time) (Connection, error)
	// ReleaseAuthentication gives back a connection's claimed attempt when
	// the backend, not the satellite, failed it, so a retry is not dropped.
	ReleaseAuthentication(ctx context.Context, connectionID string) error
	// RecordAuthFailure counts a wrong token for a satellite (see
	// Satellite.AuthBackoffUntil).
	RecordAuthFailure(ctx context.Context, satelliteID string, now time.Time) error
	// Satellite returns a satellite with all its assignments. ENOTFOUND when
	// there is no such satellite.
	Satellite(ctx context.Context, satelliteID string) (Satellite, []Assignment, error)
	// DesiredLockfileHash returns the published script-package lockfile hash,
	// nil when nothing is published.
	DesiredLockfileHash(ctx context.Context) (*string, error)
	// Settings returns the fleet-wide settings (published lockfile and
	// sandbox policy) in one consistent read.
	Settings(ctx context.Context) (Settings, error)
	// BindConnection marks connectionID authenticated as sat and makes it the
	// satellite's current connection with a fresh heartbeat and the connected
	// edge, recorded in the outbox, in one atomic write, and returns that
	// edge. The write only succeeds if the satellite still has tokenHash
	// verifiedHash. capabilities are what the agent said it offers: nil
	// when the frame had none, which keeps the stored list; a list, even an
	// empty one, replaces it, in the same request, when it differs from
	// sat.Capabilities. ECONFLICT when the connection is already bound;
	// EGONE when its record is gone; EUNAUTHENTICATED when the satellite was
	// deleted or its token rotated since it was read.
	BindConnection(ctx context.Context, connectionID string, sat Satellite, verifiedHash string, capabilities []string, now time.Time) (LifecycleEvent, error)
	// ConfirmEdge removes a published edge from the satellite's outbox, or
	// from its removal record's once it was deleted (see DeleteSatellite).
	// Confirming an edge twice changes nothing.
	ConfirmEdge(ctx context.Context, satelliteID, edgeID string) error
	// UnbindConnection undoes BindConnection's mark on the connection record
	// (not the satellite's state) and its claimed attempt, so that a
	// satellite whose authenticated reply was lost can authenticate again on
	// the same connection.
	UnbindConnection(ctx context.Context, connectionID, satelliteID string) error
	// RecordHeartbeat stores a heartbeat from connectionID. It restores the
	// connected edge (recorded in the outbox) when the satellite's last edge
	// was something else, and reports that in the outcome. A satellite with
	// no current connection adopts connectionID only while its record is
	// live and bound to the satellite. capabilities, when not nil (even
	// empty), replace the stored ones in the same write; nil keeps them. threshold is the satellite's
	// offline threshold override as its connection knows it
	// (Connection.OfflineThreshold; 0 for the default): it tunes how often
	// the write moves the satellite in the sweep's index, never the
	// deadline, which uses the stored threshold. ECONFLICT when
	// connectionID is closed; ENOTFOUND when the satellite no longer
	// exists.
	RecordHeartbeat(ctx context.Context, satelliteID, connectionID, version string, capabilities []string, threshold time.Duration, now time.Time) (HeartbeatOutcome, error)
	// RecordResult stores r if and only if (r.ConfigID, r.SystemID) is assigned
	// to r.SatelliteID, under r.TokenGeneration, as a consistent read finds
	// it when r is handled: a rotation, deletion or reassignment committed
	// before r is handled refuses r; one committed while r is handled may
	// not (r was sent before it). EFORBIDDEN when it is not assigned;
	// EUNAUTHENTICATED when the satellite's token generation moved on
	// (rotated or deleted).
	RecordResult(ctx context.Context, r Result) error
	// SaveSyncState stores a satellite's script-package sync state unless a
	// state reported later is already stored (frames can be handled out of
	// order). ENOTFOUND when the satellite no longer exists.
	SaveSyncState(ctx context.Context, satelliteID string, s SyncState) error
	// AssignmentsForConfig returns the satellite's assignments with configId.
	AssignmentsForConfig(ctx context.Context, satelliteID, configID string) ([]Assignment, error)
	// CapabilityConfig returns the operator's config of one capability kind
	// for a satellite. ENOTFOUND when there is none.
	CapabilityConfig(ctx context.Context, satelliteID, kind string) (CapabilityConfig, error)
	// SaveCapabilityStatus stores the latest status of a capability kind
	// unless one reported later is stored. ENOTFOUND when the satellite no
	// longer exists; ETOOLARGE when it already keeps MaxStatusKinds other
	// kinds.
	SaveCapabilityStatus(ctx context.Context, satelliteID string, st CapabilityStatus) error
	// CloseConnection moves the satellite to the disconnected edge (recorded
	// in the outbox, with the close's code) if the connection was its
	// current one, then deletes the connection record. A close with
	// CloseMessageTooBig of a connection bound to a satellite is recorded on
	// the satellite (OversizedMessages) whether or not it was the current
	// one. Closing an unknown connection is not an error.
	CloseConnection(ctx context.Context, connectionID string, status CloseStatus, now time.Time) (Closed, error)
	// SatelliteConnections returns the ids of the live connections bound to a
	// satellite (its current one and any older one not yet closed).
	SatelliteConnections(ctx context.Context, satelliteID string, now time.Time) ([]string, error)
}

// Fleet is the registry as operators change it: satellites, their tokens
// and assignments, the published lockfile, and the results read back.
type Fleet interface {
	Registry
	// CreateSatellite stores a new satellite. ECONFLICT when the id is taken.
	CreateSatellite(ctx context.Context, s Satellite) error
	// ListSatellites returns one page of the fleet in satellite id order:
	// up to limit satellites (without assignments) whose ids sort after
	// after ("" starts at the first). Its reads are bounded by limit, not
	// by the fleet. A page holds fewer when ctx's deadline is near; its
	// Next says where the next page starts either way. EINTERNAL when the
	// store fails.
	ListSatellites(ctx context.Context, after string, limit int) (SatellitePage, error)
	// UpdateSatellite applies u and returns the satellite as stored after
	// it; a new threshold applies at once in every view of its liveness.
	// ENOTFOUND when the satellite does not exist.
	UpdateSatellite(ctx context.Context, satelliteID string, u Update) (Satellite, error)
	// SetTokenHash replaces a satellite's token hash and moves its token
	// generation on, so connections authenticated with the old token lose
	// their authority at once. An empty hash is a tombstone nothing
	// matches. ENOTFOUND when the satellite does not exist.
	SetTokenHash(ctx context.Context, satelliteID, tokenHash string) error
	// ReplaceAssignments makes assignments the satellite's complete set
	// atomically. ECONFLICT when another replacement won a race; ENOTFOUND
	// when the satellite does not exist.
	ReplaceAssignments(ctx context.Context, satelliteID string, assignments []Assignment) error
	// RelabelConnections copies a renamed satellite's name and region onto
	// its live connection records.
	RelabelConnections(ctx context.Context, satelliteID, name, region string, now time.Time) error
	// DeleteSatellite removes a satellite, its assignments and its
	// connection records, and returns its removed edge. The edge is
	// recorded in the write that deletes the satellite, in a removal
	// record's outbox that outlives it (with the edges still pending on the
	// satellite): the caller publishes and confirms it, and what stays
	// unconfirmed the sweep publishes again, as every edge. ENOTFOUND when
	// it does not exist.
	DeleteSatellite(ctx context.Context, satelliteID string, now time.Time) (LifecycleEvent, error)
	// SetDesiredLockfileHash records the published script-package lockfile.
	SetDesiredLockfileHash(ctx context.Context, lockfileHash string) error
	// LatestResults returns up to limit results of a check, newest first
	// by Result.OrderedAt: of every environment, or of environmentID's
	// only when it is not nil.
	LatestResults(ctx context.Context, configID, systemID string, environmentID *string, limit int32) ([]Result, error)
	// SetSandboxPolicy stores the fleet-wide sandbox policy.
	SetSandboxPolicy(ctx context.Context, policy json.RawMessage, now time.Time) error
	// SetCapabilityConfig stores a satellite's config of one capability
	// kind under its current token generation. ENOTFOUND when the satellite
	// does not exist; EINVALID when it already has MaxCapabilityConfigs
	// other kinds.
	SetCapabilityConfig(ctx context.Context, satelliteID string, cfg CapabilityConfig) error
	// DeleteCapabilityConfig removes one. ENOTFOUND when there is none.
	DeleteCapabilityConfig(ctx context.Context, satelliteID, kind string) error
	// CapabilityStatuses returns a satellite's latest status per kind.
	CapabilityStatuses(ctx context.Context, satelliteID string) ([]CapabilityStatus, error)
	// OnlineSatelliteIDs returns the satellites whose heartbeat deadline is
	// still ahead at now.
	OnlineSatelliteIDs(ctx context.Context, now time.Time) ([]string, error)
}

// SatellitePage is one page of a listing of the fleet, in satellite id
// order.
type SatellitePage struct {
	Satellites []Satellite
	// Next is the id the next page starts after: the last satellite this
	// page covered (one deleted while it was read is covered but not
	// returned). Empty when no satellite follows.
	Next string
}

// Update changes some fields of a satellite; nil leaves a field alone.
// ClearThreshold removes the per-satellite threshold override.
type Update struct {
	Name, Region     *string
	Tags             *map[string]string
	OfflineThreshold *time.Duration
	ClearThreshold   bool
}

// SweepStore is what the heartbeat sweep reads and writes.
type SweepStore interface {
	// StaleSatellites returns the satellites still marked connected whose
	// heartbeat deadline is before now.
	StaleSatellites(ctx context.Context, now time.Time) ([]Stale, error)
	// MarkHeartbeatLost moves a stale satellite to heartbeat_lost and
	// records the edge in its outbox, in one write conditional on the
	// deadline read. won is false when another writer got there first;
	// then the caller must not publish.
	MarkHeartbeatLost(ctx context.Context, s Stale, now time.Time) (won bool, edge LifecycleEvent, err error)
	// PendingEdges returns the satellites (and removal records of deleted
	// ones) holding an edge recorded before before that is not confirmed
	// published.
	PendingEdges(ctx context.Context, before time.Time) ([]Satellite, error)
	// ConfirmEdge removes a published edge from the satellite's outbox, or
	// from its removal record's once it was deleted (see DeleteSatellite).
	// Confirming an edge twice changes nothing.
	ConfirmEdge(ctx context.Context, satelliteID, edgeID string) error
	// UnauthenticatedConnections returns connections opened before before
	// that have not authenticated.
	UnauthenticatedConnections(ctx context.Context, before time.Time) ([]Connection, error)
	// ExpiredConnections returns connection records past their expiry.
	ExpiredConnections(ctx context.Context, now time.Time) ([]Connection, error)
	// Connection returns a connection record (see Registry).
	Connection(ctx context.Context, connectionID string, now time.Time) (Connection, error)
	// CountOnline returns how many satellites are online at now.
	CountOnline(ctx context.Context, now time.Time) (int, error)
	// IndexLegacySatellites takes one bounded step of the backfill that
	// adds satellites stored before the fleet listing index existed to it,
	// resuming where the previous step stopped. It is idempotent; once a
	// step has found every satellite indexed, later steps only read that
	// it is done. EINTERNAL when the store fails; the step's progress is
	// then not saved, and the next step repeats it.
	IndexLegacySatellites(ctx context.Context, now time.Time) (BackfillStep, error)
}

// BackfillStep reports one step of the fleet index backfill.
type BackfillStep struct {
	Indexed int  // satellites this step added to the index
	Done    bool // every satellite is indexed
}

// Stale is a satellite found past its heartbeat deadline.
type Stale struct {
	Satellite Satellite
	// StaleAt is its key in the store's index of deadlines, as read: at
	// most its exact deadline (Satellite.LastHeartbeatAt plus its
	// threshold), which has passed.
	StaleAt time.Time
	// HeartbeatAt is the heartbeat that deadline was computed from, as read
	// (zero when the store holds none in its current form: StaleAt is
	// then the deadline).
	HeartbeatAt time.Time
}

// HeartbeatOutcome reports what a heartbeat changed.
type HeartbeatOutcome struct {
	// Restored is true when the satellite's edge moved back to connected.
	Restored bool
	// Edge is the connected edge recorded when Restored.
	Edge LifecycleEvent
}

// Closed reports what closing a connection changed.
type Closed struct {
	// SatelliteID is the satellite the connection was bound to, if any.
	SatelliteID string
	// Disconnected is true when the connection was the satellite's current one
	// and the satellite moved to the disconnected edge.
	Disconnected bool
	// Edge is the disconnected edge recorded when Disconnected.
	Edge LifecycleEvent
	// Oversized is set when the close, with CloseMessageTooBig, was
	// recorded on the satellite.
	Oversized *OversizedClose
}

// OversizedClose is a satellite's record of oversized-message closes
// before and after one more.
type OversizedClose struct {
	Before, After OversizedMessages
}

// TelemetryLedger remembers, across function instances, which telemetry
// batches of a connection were handled, and meters each connection's bytes
// per minute.
type TelemetryLedger interface {
	// ClaimBatch claims a batch of an authenticated connection. It first
	// checks the connection still speaks for its satellite: EUNAUTHENTICATED
	// when the satellite's token was rotated since the connection
	// authenticated (its TokenGeneration), or the satellite deleted. Then
	// dedupe, before the budget: a batch handled before is Finished, one
	// being handled InFlight, whatever the budget. A new batch is charged
	// size bytes of the connection's budget of the minute (at most budget
	// bytes) and marked in flight, in one atomic request, or is OverBudget
	// and not marked. A claim older than the in-flight timeout, or a batch
	// forgotten after a retryable outcome, is taken over without charging
	// the budget again. ECONFLICT when the budget or the mark kept changing.
	ClaimBatch(ctx context.Context, conn Connection, batchKey string, size, budget int, now time.Time) (BatchClaim, error)
	// FinishBatch remembers a handled batch's counts, for re-acks.
	FinishBatch(ctx context.Context, connectionID, batchKey string, claim BatchClaim, accepted, rejected int) error
	// ForgetBatch gives up a claim whose outcome was retryable, so that
	// the batch's resend is handled again (at the same ReceivedAt).
	ForgetBatch(ctx context.Context, connectionID, batchKey string, claim BatchClaim) error
}

// ClaimOutcome is what claiming a batch found.
type ClaimOutcome int

// Claim outcomes.
const (
	// Claimed: the batch is this caller's to handle.
	Claimed ClaimOutcome = iota
	// OverBudget: the connection used its bytes of the minute; nothing was
	// marked.
	OverBudget
	// InFlight: another instance is handling the same batch.
	InFlight
	// Finished: the batch was handled before; Accepted and Rejected say how.
	Finished
)

// BatchClaim is the result of ClaimBatch.
type BatchClaim struct {
	Outcome            ClaimOutcome
	Accepted, Rejected int // of a Finished batch
	// ClaimedAt identifies this caller's claim (Claimed).
	ClaimedAt time.Time
	// ReceivedAt is when the batch was first claimed (Claimed): the same
	// for every attempt at it, so every attempt stores it under one key.
	ReceivedAt time.Time
}

// TelemetryBatch is one accepted batch as stored.
type TelemetryBatch struct {
	SatelliteID    string
	ConnectionID   string
	Kind           string
	BatchID        json.RawMessage
	Payload        json.RawMessage
	DroppedByGroup map[string]float64
	Accepted       int
	ReceivedAt     time.Time
}

// TelemetrySink stores telemetry batches.
type TelemetrySink interface {
	// Store writes one batch and returns where.
	Store(ctx context.Context, b TelemetryBatch) (string, error)
}

// A telemetry listing covers DefaultTelemetryWindow up to now and returns
// DefaultTelemetryLimit batches, unless asked otherwise: at most
// MaxTelemetryLimit.
const (
	DefaultTelemetryWindow = 24 * time.Hour
	DefaultTelemetryLimit  = 100
	MaxTelemetryLimit      = 1000
)

// TelemetryQuery selects stored batches; empty fields select all.
type TelemetryQuery struct {
	SatelliteID string
	Kinds       []string
	Since       time.Time
	Until       time.Time
	Limit       int
}

// TelemetryObject is one stored batch as listed.
type TelemetryObject struct {
	Key         string    `json:"key"`
	Kind        string    `json:"kind"`
	SatelliteID string    `json:"satelliteId"`
	ReceivedAt  time.Time `json:"receivedAt"`
	Size        int64     `json:"size"`
}

// TelemetryListing is a page of stored batches, newest first. Truncated
// says the listing stopped at its scan bound: narrow the query (a
// satellite, a kind, a shorter span) to see the rest.
type TelemetryListing struct {
	Batches   []TelemetryObject `json:"batches"`
	Truncated bool              `json:"truncated"`
}

// TelemetryArchive lists stored batches.
type TelemetryArchive interface {
	List(ctx context.Context, q TelemetryQuery) (TelemetryListing, error)
}

// ConnectionAPI pushes to and closes WebSocket connections (the API Gateway
// Management API). managementURL is the API's https://.../stage base URL.
type ConnectionAPI interface {
	// Post sends one message. EGONE when the connection no longer exists,
	// ETOOLARGE when data is over the transport limit.
	Post(ctx context.Context, managementURL, connectionID string, data []byte) error
	// Close closes a connection. A connection that is already gone is not an
	// error.
	Close(ctx context.Context, managementURL, connectionID string) error
}

// ManifestEntry is one package of a script-package manifest.
type ManifestEntry struct {
	Name      string `json:"name"`
	Version   string `json:"version"`
	Integrity string `json:"integrity"`
}

// PackageStore serves published script packages.
type PackageStore interface {
	// Manifest returns the manifest of a lockfile. ENOTFOUND when unknown,
	// EINVALID when lockfileHash is malformed. The caller must not modify
	// the returned entries.
	Manifest(ctx context.Context, lockfileHash string) ([]ManifestEntry, error)
	// BlobSize returns the size in bytes of a content-addressed blob without
	// reading its content. ENOTFOUND when unknown, EINVALID when integrity
	// is malformed.
	BlobSize(ctx context.Context, integrity string) (int64, error)
	// ReadBlob returns the content of a blob of at most maxBytes bytes,
	// checked against integrity: what it returns has that integrity.
	// ENOTFOUND when unknown, EINVALID when integrity is malformed,
	// EINTERNAL when the stored object is larger than maxBytes or does not
	// match its integrity. The caller must not modify the returned bytes.
	ReadBlob(ctx context.Context, integrity string, maxBytes int64) ([]byte, error)
	// BlobURL returns a URL from which the blob can be fetched with a plain
	// HTTP GET until ttl has passed.
	BlobURL(ctx context.Context, integrity string, ttl time.Duration) (string, error)
	// ManifestURL returns a URL of the stored manifest document, for manifests
	// too large for one message.
	ManifestURL(ctx context.Context, lockfileHash string, ttl time.Duration) (string, error)
}

// PackagePublisher stores script packages where a PackageStore serves them.
type PackagePublisher interface {
	// PutBlob stores data content-addressed and returns its integrity.
	PutBlob(ctx context.Context, data []byte) (string, error)
	// PutManifest stores the manifest of entries and returns its lockfile
	// hash.
	PutManifest(ctx context.Context, entries []ManifestEntry) (string, error)
}

// SecretSource resolves secret names to values, all the names of one
// request together (one batch read where the store has one).
type SecretSource interface {
	// Resolve returns a value for every name. ENOTFOUND naming the first name
	// that cannot be resolved; EINTERNAL when the store failed. Values must
	// never be logged.
	Resolve(ctx context.Context, names []string) (map[string]string, error)
}

// LifecycleSink publishes lifecycle events.
type LifecycleSink interface {
	Emit(ctx context.Context, e LifecycleEvent) error
}

// BatchLifecycleSink is a LifecycleSink that publishes several events in
// one request (EventBridge takes up to MaxLifecycleBatch per PutEvents).
type BatchLifecycleSink interface {
	LifecycleSink
	// EmitBatch publishes es and returns one error per event, nil for each
	// one published.
	EmitBatch(ctx context.Context, es []LifecycleEvent) []error
}

// MaxLifecycleBatch is how many events one batch request publishes at most.
const MaxLifecycleBatch = 10

// EmitAll publishes es through sink, in batches when it can, and returns
// one error per event.
func EmitAll(ctx context.Context, sink LifecycleSink, es []LifecycleEvent) []error {
	if b, ok := sink.(BatchLifecycleSink); ok {
		return b.EmitBatch(ctx, es)
	}
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = sink.Emit(ctx, e)
	}
	return errs
}

// TokenVerifier checks plaintext tokens against stored hashes, in time that
// does not tell a wrong token from an unknown satellite.
type TokenVerifier interface {
	// WellFormed reports whether token is shaped like a token at all;
	// anything else is wrong without further work.
	WellFormed(token string) bool
	// Verify reports whether token matches hash. Every call with a
	// well-formed token does the same work whether or not it matches.
	Verify(hash, token string) bool
	// Refuse does what Verify does against a hash nothing matches: the cost
	// of refusing a satellite that does not exist, or one whose
	// authentication is backed off.
	Refuse(token string)
}
