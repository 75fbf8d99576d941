// Package dynamo is the DynamoDB adapter of satellite.Registry: satellites
// with their assignments, connection records, results and the desired
// script-package lockfile, in the three tables Tables names (satellites,
// connections, results); beside it, TelemetryLedger keeps telemetry
// budgets and batch marks in the telemetry table, and FanoutJobs keeps
// fan-out jobs in the jobs table. The key schema of all five is declared
// here and in template.yaml (a test keeps the two in step).
//
// Files follow the tables: connections.go (connection records);
// satellites.go, tokens.go, deletion.go, settings.go, assignments.go,
// capabilities.go, liveness.go, bind.go, closes.go, lost.go, edges.go,
// removal.go and fleet.go (the satellites table: satellite items, their
// tokens, their deletion, the fleet settings, assignment sets, capability
// statuses, heartbeats, binding and closing connections, heartbeat loss
// and the online query, the edge outbox, a deleted satellite's removal
// record, and the paged fleet listing with its backfill); results.go;
// telemetry.go; fanoutjobs.go; seed.go (fleets for benchmarks); codec.go
// (items to values); attributes.go (the attribute names of the
// Registry's items); expr.go (the builder of every update and condition
// expression, and of reads' filters and projections); registry.go (the client,
// transactions, retry limits and shared helpers).
package dynamo

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"net/url"
	"strings"
)

// Satellites table: one partition per satellite holding the satellite item,
// its profile item and one item per assignment, so a single Query returns a
// satellite with all its assignments. The satellite item is the one every
// heartbeat rewrites, so it holds only what liveness and the connection edges
// need (DynamoDB bills a write by the size of the item it rewrites); tags and
// the script-package sync state, which no heartbeat touches, live in the
// profile item. The desired script-package lockfile lives in its own
// partition.
const (
	SatellitesPartitionKey = "pk"
	SatellitesSortKey      = "sk"

	// LiveIndex is a sparse index over satellites currently marked connected
	// (only they carry liveShard), sorted by the moment they go stale, so a
	// sweep reads only the satellites that missed heartbeats. It projects no
	// attribute a heartbeat changes (see heartbeatAttr), and the deadline it
	// sorts by is rounded down to the satellite's LiveStep: a heartbeat that
	// leaves the key where it was writes nothing to the index, so a
	// satellite heartbeating every 15 s moves its index entry (a delete and
	// a put) every 30 s at the default threshold, once a minute from a 75 s
	// one, rather than on every heartbeat.
	LiveIndex        = "LiveByStaleAt"
	LiveIndexPartKey = "liveShard"
	LiveIndexSortKey = "staleAt"
	// LiveShards spreads connected satellites over this many index partitions
	// so heartbeat writes never concentrate on one.
	LiveShards = 8

	// OutboxIndex is a sparse index over satellites holding lifecycle edges
	// not yet confirmed published (only they carry outboxShard), sorted by
	// when the oldest was recorded, so the sweep reads only those.
	OutboxIndex        = "Outbox"
	OutboxIndexPartKey = outboxShardAttr
	OutboxIndexSortKey = outboxAtAttr
	// OutboxShards spreads the outbox over this many partitions: a reconnect
	// storm records thousands of edges in seconds.
	OutboxShards = 8

	// FleetIndex is a sparse index holding one entry per satellite, in
	// satellite id order: the admin listings page through it, then read the
	// satellite and profile items of one page (BatchGetItem), instead of
	// scanning the table with its assignment, capability and status items.
	//
	// Its keys are on the satellite item and never change: the partition
	// key is a constant (FleetIndexPart) written when the satellite is
	// created, the sort key is the item's own pk. The index projects keys
	// only, and DynamoDB writes a keys-only index only when an item gains,
	// changes or loses an index key: heartbeats (which rewrite the
	// satellite item), connection edges and sync-state reports (which
	// write the profile item) never write it. Only creating and deleting a
	// satellite does, and the backfill of satellites stored before the
	// index (IndexLegacySatellites), once each. That is why one unsharded
	// partition is enough: the writes it takes are bounded by how fast
	// satellites are created (each costs a bcrypt in the admin function),
	// far below the 1,000 writes per second a partition takes, and a page
	// is a single Query in order, with no shards to merge.
	FleetIndex        = "Fleet"
	FleetIndexPartKey = "fleetPart"
	FleetIndexSortKey = SatellitesPartitionKey
	// FleetIndexPart is the one value of FleetIndexPartKey.
	FleetIndexPart = "fleet"

	// SatellitesTTLAttribute holds the epoch second after which an item is
	// gone. Only removal records carry it, and only once their edges are
	// confirmed published (see removalKeep).
	SatellitesTTLAttribute = "expiresAt"
)

// Connections table: one item per WebSocket connection.
const (
	ConnectionsPartitionKey = "connectionId"
	// BySatelliteIndex is a sparse index of authenticated connections (only
	// they carry satelliteId).
	BySatelliteIndex        = "BySatellite"
	BySatelliteIndexPartKey = "satelliteId"
	// ConnectionsTTLAttribute holds the epoch second after which the record is
	// gone, whether or not DynamoDB has deleted it yet.
	ConnectionsTTLAttribute = "expiresAt"
	// UnauthenticatedIndex is a sparse index of connections that have not
	// authenticated (only they carry unauthShard), by connectedAt, so the
	// sweep finds those past the authentication deadline without a scan.
	UnauthenticatedIndex        = "Unauthenticated"
	UnauthenticatedIndexPartKey = "unauthShard"
	UnauthenticatedIndexSortKey = "connectedAt"
	// ExpiryIndex holds every connection by expiresAt, so the sweep finds
	// records past their expiry (whose $disconnect never came) without a scan.
	ExpiryIndex        = "ByExpiry"
	ExpiryIndexPartKey = "expiryShard"
	ExpiryIndexSortKey = ConnectionsTTLAttribute
)

// ConnectionShards spreads each connection index (Unauthenticated,
// ByExpiry) over this many partitions. Every $connect writes both indexes,
// and one partition takes about 1,000 writes per second: with a constant key
// a reconnect storm would throttle handshakes. The sweep queries every shard.
const ConnectionShards = 8

// Results table: results of one check (configId, systemId) in one partition,
// newest first by sort key.
const (
	ResultsPartitionKey = "checkKey"
	ResultsSortKey      = "resultKey"
	ResultsTTLAttribute = "expiresAt"
)

// Telemetry table: the in-flight and handled marks of telemetry batches and
// the per-connection byte budgets, all expiring (TTL).
const (
	TelemetryPartitionKey = "key"
	TelemetryTTLAttribute = "expiresAt"
)

const (
	satellitePrefix = "SAT#"
	satelliteSort   = "SATELLITE"
	// profileSort is the satellite's profile item: tags and sync state.
	profileSort  = "PROFILE"
	assignPrefix = "ASSIGN#"
	// versionSort is the item counting the changes of a satellite's
	// assignment set: a replacement is conditional on the count it read.
	versionSort = "VERSION#ASSIGNMENTS"
	// The fleet-wide settings share one partition (named for its first
	// item): the published lockfile and the sandbox policy, so that an
	// authentication reads both in one query.
	packagesPart = "SCRIPT_PACKAGES"
	packagesSort = "DESIRED"
	sandboxSort  = "SANDBOX_POLICY"
	// capConfigPrefix starts the sort key of a capability config item.
	capConfigPrefix = "CAPCFG#"
	// statusSort is the item holding a satellite's capability statuses. It
	// sorts after every other item of the partition (statusBoundary), so a
	// read of the satellite leaves it out.
	statusSort     = "~CAPSTATUS"
	statusBoundary = "~"
	// The fleet index backfill keeps its progress in an item of its own
	// partition (not the settings partition every authentication reads).
	migrationPart     = "MIGRATION"
	fleetBackfillSort = "FLEET_INDEX"
	// A deleted satellite's removal record, in a partition of its own
	// (nothing that reads a satellite's partition sees it): the outbox of
	// its removed edge and of the edges still pending when it was deleted.
	removalPrefix = "REMOVED#"
	removalSort   = "REMOVED"
)

func satelliteKey(id string) string { return satellitePrefix + id }

// satelliteItemKey is the key of a satellite's satellite item.
func satelliteItemKey(id string) item {
	return item{SatellitesPartitionKey: str(satelliteKey(id)), SatellitesSortKey: str(satelliteSort)}
}

// profileKey is the key of a satellite's profile item.
func profileKey(id string) item {
	return item{SatellitesPartitionKey: str(satelliteKey(id)), SatellitesSortKey: str(profileSort)}
}

// keyPart escapes an id for use inside a composite key so that "#" inside an
// id can never make two different pairs collide. An id whose escaped form is
// long is hashed instead (prefixed "~", which escaping never produces), so
// that two of them fit DynamoDB's 1,024-byte sort key.
func keyPart(id string) string {
	escaped := url.QueryEscape(id)
	if len(escaped) <= maxKeyPart {
		return escaped
	}
	sum := sha256.Sum256([]byte(id))
	return "~" + hex.EncodeToString(sum[:])
}

// maxKeyPart bounds an escaped id inside a key.
const maxKeyPart = 500

func assignmentSort(configID, systemID string) string {
	return assignPrefix + keyPart(configID) + "#" + keyPart(systemID)
}

func assignmentConfigPrefix(configID string) string { return assignPrefix + keyPart(configID) + "#" }

func checkKey(configID, systemID string) string { return keyPart(configID) + "#" + keyPart(systemID) }

// Prefixes of the sharded index partition values: "<prefix>#<n>".
const (
	liveShardPrefix   = "live"
	unauthShardPrefix = "unauth"
	expiryShardPrefix = "expiry"
	outboxShardPrefix = "outbox"
)

// shardOf spreads ids over n partition values of an index, stably: the same
// id always lands in the same shard.
func shardOf(prefix, id string, n int) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	return fmt.Sprintf("%s#%d", prefix, h.Sum32()%uint32(n))
}

// shardKeys returns every partition value shardOf can give.
func shardKeys(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s#%d", prefix, i)
	}
	return keys
}

func liveShard(satelliteID string) string { return shardOf(liveShardPrefix, satelliteID, LiveShards) }

func outboxShard(satelliteID string) string {
	return shardOf(outboxShardPrefix, satelliteID, OutboxShards)
}

func unauthShard(connectionID string) string {
	return shardOf(unauthShardPrefix, connectionID, ConnectionShards)
}

func expiryShard(connectionID string) string {
	return shardOf(expiryShardPrefix, connectionID, ConnectionShards)
}

// LiveShardKeys returns every liveShard partition value.
func LiveShardKeys() []string { return shardKeys(liveShardPrefix, LiveShards) }

func isAssignmentSort(sk string) bool { return strings.HasPrefix(sk, assignPrefix) }

func capConfigSort(kind string) string { return capConfigPrefix + kind }

func isCapConfigSort(sk string) bool { return strings.HasPrefix(sk, capConfigPrefix) }
