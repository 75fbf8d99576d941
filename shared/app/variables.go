package app

// Variable documents one environment variable LoadConfig reads.
type Variable struct {
	Name        string
	Default     string
	Description string
}

// Variables lists every environment variable the functions read. The
// configuration table of docs/DEPLOY.md and template.yaml are checked against it.
var Variables = []Variable{
	{"SATELLITES_TABLE", "(required)", "DynamoDB table of satellites, their assignments and the desired script-package lockfile."},
	{"CONNECTIONS_TABLE", "(required)", "DynamoDB table of WebSocket connections (TTL on expiresAt)."},
	{"RESULTS_TABLE", "(required)", "DynamoDB table of health-check results (TTL on expiresAt)."},
	{"SCRIPT_PACKAGES_BUCKET", "empty", "S3 bucket of script-package blobs and manifests; empty means no script-package store (scriptPackagesLockfileHash omitted, empty manifests, null blobs)."},
	{"SECRETS_PREFIX", "empty", "Secrets Manager name prefix for run secrets (secret NAME is <prefix>NAME); empty disables secret delivery."},
	{"SECRETS_FILE", "empty", "JSON file {NAME: value} of run secrets, used instead of Secrets Manager (local stack)."},
	{"EVENT_BUS_NAME", "empty", "EventBridge bus for lifecycle events; empty logs them instead."},
	{"LIFECYCLE_LOG_FILE", "empty", "Without an event bus, also append each lifecycle event to this file as a JSON line (local stack)."},
	{"TELEMETRY_TABLE", "empty", "DynamoDB table of telemetry batch marks and per-connection byte budgets (TTL on expiresAt); telemetry is stored only with TELEMETRY_BUCKET too."},
	{"TELEMETRY_BUCKET", "empty", "S3 bucket telemetry batches are stored in, one object per batch; empty: every batch is acknowledged as of a kind nothing stores."},
	{"TELEMETRY_KINDS", "logstream,metricstream,metric-scrape", "Comma-separated telemetry kinds stored; other kinds get a terminal ack (0, 0, false)."},
	{"TELEMETRY_BYTES_PER_MINUTE", "2097152", "Bytes of telemetry frames one connection may send per minute (at least 131072); over it batches get a retryable ack."},
	{"MANAGEMENT_ENDPOINT", "derived from the event", "@connections base URL (https://host/stage); overrides the endpoint derived from each event (local stack) and is required for pushes outside a WebSocket event."},
	{"RESULT_RETENTION_DAYS", "30", "Days a stored result is kept."},
	{"BLOB_URL_TTL_SECONDS", "300", "Lifetime of presigned URLs for blobs and manifests too large for one message."},
	{"CONNECTION_CACHE_SECONDS", "1800", "How long a warm function instance trusts an authenticated connection it has seen without reading its record again (a renamed satellite keeps its old name in result sources for at most this long); 0 reads it for every frame."},
	{"KEEPALIVE_SECONDS", "240", "How often a connection's heartbeats are answered with a keepalive frame, so that CloudFront (which closes a WebSocket its origin sent nothing on for 10 minutes) keeps a satellite that only heartbeats; 0 sends none."},
	{"PACKAGE_CACHE_BYTES", "16777216", "Bytes of script-package manifests and blobs (verified against their content address) a warm message function keeps in memory, least recently used evicted first; 0 keeps none."},
	{"PACKAGE_CACHE_ENTRIES", "1024", "Manifests and blobs a warm message function keeps at most; 0 keeps none."},
	{"SECRET_CACHE_SECONDS", "30", "How long a warm message function keeps a secret value read from Secrets Manager: a rotated secret reaches satellites within this time; 0 reads Secrets Manager for every request."},
	{"SECRET_CACHE_ENTRIES", "1024", "Secret values a warm message function keeps at most (and 4 MiB in all); 0 keeps none."},
	{"PUSH_CONCURRENCY", "16", "Parallel posts of one fan-out worker (refresh_script_packages, sandbox_policy)."},
	{"JOBS_TABLE", "(admin and fan-out functions)", "DynamoDB table of fan-out jobs: an item per job with its progress (TTL on expiresAt)."},
	{"FANOUT_FUNCTION", "(admin and fan-out functions)", "Function that runs fan-out tasks: the admin function starts jobs on it, and it hands the rest of a segment on to itself."},
	{"FANOUT_SEGMENTS", "4", "Parallel workers per fan-out job (at most 64): the connections are scanned in this many segments."},
	{"DEFAULT_SANDBOX_POLICY", "empty", "Sandbox policy (a JSON object, at most 16 KB) that authenticated carries while no policy is set with PUT /sandbox-policy; a set policy always wins. The template sets the DefaultSandboxPolicy parameter (upstream Checkstack's shipped default). Empty: none until one is set (satellites run scripts fail-closed). A value that is not a JSON object stops the function from starting."},
	{"RESULTS_FEED_QUEUE_URL", "(feed function)", "SQS queue the feed function sends every stored result to (the results feed the core consumes)."},
	{"UNAUTHENTICATED_DEADLINE_SECONDS", "30", "The sweep closes connections that have not authenticated after this long."},
	{"REPUBLISH_AFTER_SECONDS", "120", "The sweep publishes again a lifecycle edge whose publication was not confirmed after this long (longer than a sweep runs)."},
	{"S3_USE_PATH_STYLE", "false", "Path-style S3 addressing, for S3-compatible local servers."},
	{"LOG_LEVEL", "INFO (or AWS_LAMBDA_LOG_LEVEL)", "DEBUG, INFO, WARN or ERROR."},
	{"STACK_NAME", "local", "Value of the Stack dimension of every metric (the template sets the stack's name)."},
	{"METRICS_PERIOD_SECONDS", "60", "Period over which a warm function instance aggregates its routine metrics (frames, posts, results), written once the period is over and stamped with its start; 0 writes them at the end of every invocation. Other metrics are written at the end of the invocation that recorded them."},
	{"AWS_REGION", "set by Lambda", "Region of the API, used to derive the @connections endpoint."},
}
