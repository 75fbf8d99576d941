package dynamo

// The attribute names of the Registry's items, by item (the key
// attributes are in schema.go; the telemetry and jobs tables' are in
// telemetry.go and fanoutjobs.go). A name two kinds of item share is
// declared once, with the first.

// The satellite item (satelliteSort): what liveness and the connection
// edges need, rewritten by every heartbeat.
const (
	satelliteIDAttr     = "satelliteId"
	nameAttr            = "name"
	regionAttr          = "region"
	tokenHashAttr       = "tokenHash"
	createdAtAttr       = "createdAt"
	authFailuresAttr    = "authFailures"
	authFailedAtAttr    = "authFailedAt"
	lastDisconnectAttr  = "lastDisconnectedAt"
	lastEdgeAttr        = "lastConnectionEvent"
	currentConnAttr     = "connectionId"
	agentVersionAttr    = "version"
	tokenGenerationAttr = "tokenGeneration"

	// heartbeatAttr holds the satellite's last heartbeat, and
	// legacyHeartbeatAttr the one before this version (still read, and
	// removed at the next disconnect): see liveness.
	heartbeatAttr       = "heartbeatAt"
	legacyHeartbeatAttr = "lastHeartbeatAt"

	// satelliteThresholdAttr is the satellite item's threshold override
	// (satellite.Satellite.OfflineThreshold), which liveness adds to a
	// heartbeat to make its key in the live index.
	satelliteThresholdAttr = "offlineThresholdMs"

	// closedConnectionAttr is the satellite item's last closed connection:
	// a heartbeat from that connection is refused and cannot make it
	// current again.
	closedConnectionAttr = "closedConnectionId"

	// capabilitiesAttr holds a satellite's capabilities: a list of strings.
	capabilitiesAttr = "capabilities"

	// The marks of what its connections went through: when its heartbeats
	// were found lost (until its next connected edge), and its connections
	// closed for a message over API Gateway's limit (a count, the latest
	// and the one before).
	heartbeatLostAttr   = "heartbeatLostAt"
	oversizedClosesAttr = "oversizedCloses"
	oversizedAtAttr     = "oversizedAt"
	oversizedPrevAtAttr = "oversizedPrevAt"

	// The outbox of lifecycle edges (see edges.go): pending edges by id,
	// and the Outbox index's keys.
	pendingEdgesAttr = "pendingEdges"
	outboxShardAttr  = "outboxShard"
	outboxAtAttr     = "outboxAt"
	// lastSeenAttr is the last heartbeat before a disconnect, kept for the
	// republication of a disconnected edge (the disconnect removes the
	// heartbeat).
	lastSeenAttr = "lastSeenAt"
)

// The fields of an outbox entry (pendingEdgesAttr's values).
const (
	entryEdgeField           = "edge"
	entryAtField             = "at"
	entryWriterField         = "by"
	entryLastSeenField       = lastSeenAttr
	entryCloseCodeField      = "closeCode"
	entryRecoveredField      = "recovered"
	entryReconnectAfterField = "reconnectAfterMs"
)

// The profile item (profileSort), and the satellite item of a satellite
// stored before profile items: tags and the script-package sync state.
const (
	tagsAttr      = "tags"
	syncStateAttr = "syncState"
)

// The fields of the sync state (syncStateAttr's value).
const (
	syncStatusField       = "status"
	syncErrorMessageField = "errorMessage"
	syncReportedAtField   = "reportedAt"
	syncLockfileHashField = lockfileHashAttr
)

// The item counting the changes of an assignment set (versionSort).
const setVersionAttr = "version"

// An assignment item (assignmentSort), besides tokenGenerationAttr.
const (
	configIDAttr   = "configId"
	systemIDAttr   = "systemId"
	assignmentAttr = "assignment"
	// environmentsAttr holds an assignment item's environment ids (a
	// string set; absent when it lists none).
	environmentsAttr = "environmentIds"
)

// A capability config item (capConfigSort).
const (
	kindAttr      = "kind"
	payloadAttr   = "payload"
	secretsAttr   = "secrets"
	updatedAtAttr = "updatedAt"
)

// The capability statuses item (statusSort): a map by kind, each entry
// its payload (payloadAttr) and when it was reported (statusAtField).
const (
	statusesAttr  = "statuses"
	statusAtField = "at"
)

// The fleet settings: the desired lockfile (packagesSort) and the sandbox
// policy (sandboxSort, besides updatedAtAttr).
const (
	lockfileHashAttr = "lockfileHash"
	policyAttr       = "policy"
)

// The fleet index backfill's progress item (fleetBackfillSort), besides
// updatedAtAttr.
const (
	resumePKAttr     = "resumePk"
	resumeSKAttr     = "resumeSk"
	indexedAttr      = "satellitesIndexed"
	backfillDoneAttr = "done"
)

// A deleted satellite's removal record (removalSort): the satellite's id,
// name, region and creation as its satellite item held them, the outbox
// attributes, and these.
const (
	removedAtAttr = "removedAt"
	// keepUntilAttr is the epoch second the record's expiresAt takes when
	// its last edge is confirmed.
	keepUntilAttr = "keepUntil"
)

// A connection record (the Connections table), besides its key and index
// attributes (schema.go) and tokenGenerationAttr.
const (
	satelliteNameAttr   = "satelliteName"
	satelliteRegionAttr = "satelliteRegion"
	authenticatedAtAttr = "authenticatedAt"
	authAttemptAtAttr   = "authAttemptAt"
	// connectionThresholdAttr is the record's copy of its satellite's
	// threshold override (satellite.Connection.OfflineThreshold).
	connectionThresholdAttr = "offlineThresholdMs"
	// lastSatelliteAttr is the record's satellite after it was unbound, so
	// that the close of the connection still finds the satellite whose
	// current connection it is.
	lastSatelliteAttr = "lastSatelliteId"
)

// A result item (the Results table), besides configIDAttr, systemIDAttr
// and satelliteIDAttr.
const (
	sourceAttr     = "source"
	statusAttr     = "status"
	executedAtAttr = "executedAt"
	receivedAtAttr = "receivedAt"
	latencyAttr    = "latencyMs"
	detailAttr     = "result"
	// clockSkewAttr holds Result.ClockSkewMs, only on a result dated ahead.
	clockSkewAttr = "clockSkewMs"
	// resultEnvironmentAttr holds the environment a result's run was for.
	resultEnvironmentAttr = "environmentId"
)
