// Runs the consumer from the command line: each result becomes the call the
// core makes for it, printed as one JSON line.
//
//   RESULTS_FEED_QUEUE_URL=<ResultsFeedQueueURL> node dist/main.js
//
// Locally (make dev) also set AWS_ENDPOINT_URL_SQS to the banner's SQS
// address and any AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. MAX_RESULTS
// stops it after that many results.
//
// Inside the core, handle() is instead:
//
//   await rpcClient.forPlugin(HealthCheckApi).ingestSatelliteResult(toIngestInput(result));

import { SQSClient } from "@aws-sdk/client-sqs";

import { consumeResults } from "./consumer.js";
import { toIngestInput } from "./feed.js";

const queueUrl = process.env.RESULTS_FEED_QUEUE_URL;
if (!queueUrl) {
  console.error("RESULTS_FEED_QUEUE_URL is required (the stack's ResultsFeedQueueURL output)");
  process.exit(2);
}
const max = Number(process.env.MAX_RESULTS ?? "0");
const stop = new AbortController();
process.on("SIGINT", () => stop.abort());
process.on("SIGTERM", () => stop.abort());

let handled = 0;
await consumeResults({
  client: new SQSClient({}),
  queueUrl,
  signal: stop.signal,
  handle: async (result) => {
    console.log(JSON.stringify({ resultId: result.resultId, ingestSatelliteResult: toIngestInput(result) }));
    handled++;
    if (max > 0 && handled >= max) stop.abort();
  },
  onSkip: (result, reason) => console.error(`skipped ${result.resultId}: ${reason}`),
  onError: (error, message) => console.error(`message ${message.MessageId} left for redelivery: ${String(error)}`),
});
