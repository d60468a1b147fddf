import type { SQSRecord } from 'aws-lambda';
import { forEachConcurrent } from './concurrency.js';
import { MessageFormatError } from './errors.js';
import { logger } from './logger.js';

/**
 * Runs `handle` over a batch's records with bounded concurrency and returns one settled result per
 * record, in order — the shape `@middy/sqs-partial-batch-failure` turns into `batchItemFailures`.
 * A body that is not an event we understand can never succeed: it is logged and acknowledged here
 * (the one owner of that decision) instead of cycling to the DLQ.
 */
export async function settleRecords(
  records: readonly SQSRecord[],
  concurrency: number,
  handle: (record: SQSRecord) => Promise<unknown>,
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
        results[i] = { status: 'rejected', reason: err };
      }
    }
  });
  return results;
}
