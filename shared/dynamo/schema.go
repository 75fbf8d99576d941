// Package dynamo is the DynamoDB adapter of satellite.Registry: satellites
// with their assignments, connection records, results and the desired
// script-package lockfile, in three tables whose key schema is declared here
// and in template.yaml (a test keeps the two in step).
package dynamo

import (
	"fmt"
	"hash/fnv"
	"net/url"
	"strings"
)

// Satellites table: one partition per satellite holding the satellite item and
// one item per assignment, so a single Query returns a satellite with all its
// assignments. The desired script-package lockfile lives in its own partition.
const (
	SatellitesPartitionKey = "pk"
	SatellitesSortKey      = "sk"

	// LiveIndex is a sparse index over satellites currently marked connected
	// (only they carry liveShard), sorted by the moment they go stale, so a
	// sweep reads only the stale ones.
	LiveIndex        = "LiveByStaleAt"
	LiveIndexPartKey = "liveShard"
	LiveIndexSortKey = "staleAt"
	// LiveShards spreads connected satellites over this many index partitions
	// so heartbeat writes never concentrate on one.
	LiveShards = 8
	// PendingShard is the LiveIndex partition of the sweep's outbox: edges
	// stored but not yet confirmed published, sorted by when they happened.
	PendingShard = "pending"
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

// Constant partition values of the connection indexes.
const (
	unauthShard = "unauthenticated"
	expiryShard = "connections"
)

// Results table: results of one check (configId, systemId) in one partition,
// newest first by sort key.
const (
	ResultsPartitionKey = "checkKey"
	ResultsSortKey      = "resultKey"
	ResultsTTLAttribute = "expiresAt"
)

const (
	satellitePrefix = "SAT#"
	satelliteSort   = "SATELLITE"
	assignPrefix    = "ASSIGN#"
	packagesPart    = "SCRIPT_PACKAGES"
	packagesSort    = "DESIRED"
)

func satelliteKey(id string) string { return satellitePrefix + id }

// keyPart escapes an id for use inside a composite key so that "#" inside an
// id can never make two different pairs collide.
func keyPart(id string) string { return url.QueryEscape(id) }

func assignmentSort(configID, systemID string) string {
	return assignPrefix + keyPart(configID) + "#" + keyPart(systemID)
}

func assignmentConfigPrefix(configID string) string { return assignPrefix + keyPart(configID) + "#" }

func checkKey(configID, systemID string) string { return keyPart(configID) + "#" + keyPart(systemID) }

func liveShard(satelliteID string) string {
	h := fnv.New32a()
	h.Write([]byte(satelliteID))
	return fmt.Sprintf("live#%d", h.Sum32()%LiveShards)
}

// LiveShardKeys returns every liveShard partition value.
func LiveShardKeys() []string {
	keys := make([]string, LiveShards)
	for i := range keys {
		keys[i] = fmt.Sprintf("live#%d", i)
	}
	return keys
}

func isAssignmentSort(sk string) bool { return strings.HasPrefix(sk, assignPrefix) }
