// Consumes the results feed: long-polls the queue, hands every result to the
// core exactly once per consumer process, in order per check, and deletes a
// message only once all its results are handled. A message whose handling
// fails is left on the queue: SQS delivers it again after the queue's
// visibility timeout, and after five receives moves it to the dead-letter
// queue (ResultsFeedDeadLetterQueueURL), where nothing is lost either.

import {
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SQSClient,
  type Message,
} from "@aws-sdk/client-sqs";

import { checkKey, parseFeedMessage, type FeedResult } from "./feed.js";

export interface ConsumerOptions {
  client: SQSClient;
  /** The stack's ResultsFeedQueueURL output. */
  queueUrl: string;
  /** Hands one result to the core; a rejection leaves its message on the queue. */
  handle: (result: FeedResult) => Promise<void>;
  /** Told about what is skipped: a redelivered result, or one older than what was applied. */
  onSkip?: (result: FeedResult, reason: "duplicate" | "stale") => void;
  onError?: (error: unknown, message: Message) => void;
  signal?: AbortSignal;
  /** How many result ids to remember for deduplication (100,000). */
  rememberIds?: number;
}

/**
 * Runs until the signal aborts. In the core, make resultId a unique key of
 * the stored runs as well: this memory does not survive a restart.
 */
export async function consumeResults(opts: ConsumerOptions): Promise<void> {
  const seen = new Set<string>();
  const limit = opts.rememberIds ?? 100_000;
  const latest = new Map<string, string>(); // check key -> greatest sequence applied
  while (!opts.signal?.aborted) {
    let messages: Message[] = [];
    try {
      const out = await opts.client.send(
        new ReceiveMessageCommand({
          QueueUrl: opts.queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 20,
          MessageSystemAttributeNames: ["ApproximateReceiveCount"],
        }),
        { abortSignal: opts.signal },
      );
      messages = out.Messages ?? [];
    } catch (error) {
      if (opts.signal?.aborted) return;
      throw error;
    }
    for (const message of messages) {
      try {
        const doc = parseFeedMessage(message.Body ?? "");
        // Within a check, apply results in the order they were stored.
        const results = [...doc.results].sort((a, b) => (a.sequence < b.sequence ? -1 : a.sequence > b.sequence ? 1 : 0));
        for (const result of results) {
          if (seen.has(result.resultId)) {
            opts.onSkip?.(result, "duplicate");
            continue;
          }
          const key = checkKey(result);
          const applied = latest.get(key);
          if (applied !== undefined && result.sequence < applied) {
            // A newer run of this check is already the check's state; the
            // core dates a run by when it ingests it, so applying this one
            // now would make it the newest.
            opts.onSkip?.(result, "stale");
          } else {
            await opts.handle(result);
            latest.set(key, result.sequence);
          }
          seen.add(result.resultId);
          if (seen.size > limit) seen.delete(seen.values().next().value as string);
        }
        await opts.client.send(new DeleteMessageCommand({ QueueUrl: opts.queueUrl, ReceiptHandle: message.ReceiptHandle }));
      } catch (error) {
        // Left on the queue: delivered again, and dead-lettered after five tries.
        opts.onError?.(error, message);
      }
    }
  }
}
