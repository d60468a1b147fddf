import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { SQSRecord } from 'aws-lambda';
import { type FunctionName, type QueueName, topology } from '../../topology/topology.js';
import { describeMessage, type FailureRecord, recordedError } from '../contracts/failures.js';
import { failureKey } from '../contracts/keys.js';
import { forEachConcurrent } from './concurrency.js';
import { runtimeConfig } from './config.js';
import { MessageFormatError } from './errors.js';
import { logger } from './logger.js';
import { s3 } from './s3.js';

/** The functions an SQS queue triggers (their topology trigger names a queue). */
export type QueueConsumer = {
  [F in FunctionName]: (typeof topology.functions)[F]['trigger'] extends { queue: QueueName } ? F : never;
}[FunctionName];

/** The queue a consumer is triggered by. */
function queueOf(fn: QueueConsumer): QueueName {
  return (topology.functions[fn].trigger as { queue: QueueName }).queue;
}

/**
 * Runs `handle` over a batch's records with bounded concurrency and returns one settled result per
 * record, in order — the shape `@middy/sqs-partial-batch-failure` turns into `batchItemFailures`.
 * A body that is not an event we understand can never succeed: it is logged and acknowledged here
 * (the one owner of that decision) instead of cycling to the DLQ. A record that fails is retried, and
 * its error is written to a failure record (see `contracts/failures.ts`) for `telemetry-pipeline dlq`.
 */
export async function settleRecords(
  records: readonly SQSRecord[],
  concurrency: number,
  handle: (record: SQSRecord) => Promise<unknown>,
  consumer: QueueConsumer,
): Promise<PromiseSettledResult<unknown>[]> {
  const results: PromiseSettledResult<unknown>[] = new Array(records.length);
  await forEachConcurrent(records, concurrency, async (record, i) => {
    try {
      results[i] = { status: 'fulfilled', value: await handle(record) };
    } catch (err) {
      if (err instanceof MessageFormatError) {
        logger.error(
          { err, messageId: record.messageId, error_code: 'bad-message' },
          'message acknowledged without processing',
        );
        results[i] = { status: 'fulfilled', value: undefined };
      } else {
        await writeFailureRecord(consumer, record, err);
        results[i] = { status: 'rejected', reason: err };
      }
    }
  });
  return results;
}

/**
 * Records one error for every record of a batch that fails as a whole (the warehouse's FIFO batches:
 * all of its messages are retried together).
 */
export async function recordBatchFailure(
  consumer: QueueConsumer,
  records: readonly SQSRecord[],
  err: unknown,
): Promise<void> {
  await forEachConcurrent(records, 4, (record) => writeFailureRecord(consumer, record, err));
}

/** Longest wait for the record's PutObject: a slow store must not eat the function's time budget. */
const WRITE_TIMEOUT_MS = 5_000;

/** The failure record of a record's latest failed attempt. */
export function failureRecord(
  consumer: QueueConsumer,
  record: SQSRecord,
  err: unknown,
  now = new Date(),
): FailureRecord {
  const about = describeMessage(record.body);
  const firstReceive = Number(record.attributes.ApproximateFirstReceiveTimestamp);
  const attempts = Number(record.attributes.ApproximateReceiveCount);
  return {
    queue: queueOf(consumer),
    messageId: record.messageId,
    function: consumer,
    objects: about.objects,
    summary: about.summary,
    firstAttemptAt: (Number.isFinite(firstReceive) && firstReceive > 0
      ? new Date(firstReceive)
      : now
    ).toISOString(),
    lastFailureAt: now.toISOString(),
    attempts: Number.isInteger(attempts) && attempts > 0 ? attempts : 1,
    error: recordedError(err),
  };
}

/**
 * One PutObject per failed record, overwriting the previous attempt's. Never throws: the message's
 * own failure (and so its retry, and in the end its move to the DLQ) must not depend on this write.
 */
async function writeFailureRecord(consumer: QueueConsumer, record: SQSRecord, err: unknown): Promise<void> {
  try {
    const value = failureRecord(consumer, record, err);
    await s3().send(
      new PutObjectCommand({
        Bucket: runtimeConfig.buckets.lake,
        Key: failureKey(value.queue, record.messageId),
        Body: `${JSON.stringify(value, null, 2)}\n`,
        ContentType: 'application/json',
      }),
      { abortSignal: AbortSignal.timeout(WRITE_TIMEOUT_MS) },
    );
  } catch (writeErr) {
    logger.warn(
      { err: writeErr, messageId: record.messageId, function: consumer },
      'could not write the failure record; the message is retried all the same',
    );
  }
}
