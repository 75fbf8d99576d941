// The results feed's message document, version 1 (docs/RESULTS-FEED.md).

/** One stored health-check result. */
export interface FeedResult {
  /** Unique per stored result, the same in every delivery: dedupe by it. */
  resultId: string;
  /** Orders the results of one (configId, systemId, environmentId): compare as strings. */
  sequence: string;
  satelliteId: string;
  /** "name (region)" of the satellite when it reported. */
  sourceLabel: string;
  configId: string;
  systemId: string;
  environmentId: string | null;
  status: "healthy" | "unhealthy" | "degraded";
  latencyMs: number | null;
  /** When the satellite ran the check (its clock), RFC 3339. */
  executedAt: string;
  /** When the backend stored the result, RFC 3339. */
  receivedAt: string;
  /** The result object as the satellite sent it. */
  result: Record<string, unknown> | null;
  /**
   * Only on a result whose executedAt was more than 5 minutes ahead of
   * receivedAt (the satellite's clock runs fast): how far ahead, in ms.
   */
  clockSkewMs?: number;
}

/** One SQS message of the feed. */
export interface FeedMessage {
  version: 1;
  type: "results";
  results: FeedResult[];
}

/** Parses a message body; throws on a document this consumer does not know. */
export function parseFeedMessage(body: string): FeedMessage {
  const doc = JSON.parse(body) as Partial<FeedMessage>;
  if (doc.version !== 1 || doc.type !== "results" || !Array.isArray(doc.results)) {
    throw new Error(`not a version 1 results message (version ${String(doc.version)}, type ${String(doc.type)})`);
  }
  return doc as FeedMessage;
}

/** The key results are ordered within. */
export function checkKey(r: FeedResult): string {
  return JSON.stringify([r.configId, r.systemId, r.environmentId]);
}

/**
 * What the core's health-check service takes for a satellite's result: the
 * input of HealthCheckApi.ingestSatelliteResult, which the core's own
 * satellite backend calls from its SatelliteResultHandler.
 */
export interface IngestSatelliteResultInput {
  configId: string;
  systemId: string;
  status: FeedResult["status"];
  latencyMs?: number;
  result?: Record<string, unknown>;
  executedAt: string;
  sourceId: string;
  sourceLabel: string;
  environmentId: string | null;
}

export function toIngestInput(r: FeedResult): IngestSatelliteResultInput {
  return {
    configId: r.configId,
    systemId: r.systemId,
    status: r.status,
    latencyMs: r.latencyMs ?? undefined,
    result: r.result ?? undefined,
    executedAt: r.executedAt,
    sourceId: r.satelliteId,
    sourceLabel: r.sourceLabel,
    environmentId: r.environmentId,
  };
}
