import {
  GetQueueAttributesCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { messageDeduplicationId, WAREHOUSE_GROUP, type WarehouseMessage } from '../contracts/messages.js';
import { forEachConcurrent } from './concurrency.js';
import { runtimeConfig } from './config.js';

let client: SQSClient | undefined;

export function sqs(): SQSClient {
  client ??= new SQSClient({
    region: runtimeConfig.region,
    ...(runtimeConfig.sqsEndpoint ? { endpoint: runtimeConfig.sqsEndpoint } : {}),
  });
  return client;
}

/**
 * Sends one message to the warehouse FIFO queue (single group ⇒ one writer, in order); `triggers` are
 * the ids of the messages that caused it (see `deduplicationId`).
 */
export async function sendToWarehouse(
  queueUrl: string,
  message: WarehouseMessage,
  triggers: readonly string[],
): Promise<void> {
  await sqs().send(
    new SendMessageCommand({
      QueueUrl: queueUrl,
      MessageBody: JSON.stringify(message),
      MessageGroupId: WAREHOUSE_GROUP,
      MessageDeduplicationId: messageDeduplicationId(message, triggers),
    }),
  );
}

/** A queue's approximate counts: visible, in flight (received, not yet deleted), delayed. */
export interface QueueCounts {
  waiting: number;
  inFlight: number;
  delayed: number;
}

export async function queueCounts(queueUrl: string): Promise<QueueCounts> {
  const res = await sqs().send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: [
        'ApproximateNumberOfMessages',
        'ApproximateNumberOfMessagesNotVisible',
        'ApproximateNumberOfMessagesDelayed',
      ],
    }),
  );
  const a = res.Attributes ?? {};
  return {
    waiting: Number(a.ApproximateNumberOfMessages ?? 0),
    inFlight: Number(a.ApproximateNumberOfMessagesNotVisible ?? 0),
    delayed: Number(a.ApproximateNumberOfMessagesDelayed ?? 0),
  };
}

/** Messages in a queue: visible, in flight and delayed. */
export async function queueDepth(queueUrl: string): Promise<number> {
  const c = await queueCounts(queueUrl);
  return c.waiting + c.inFlight + c.delayed;
}

/** Sends many messages, ten per SendMessageBatch call (SQS's limit), a few calls at a time. */
export async function sendAll(queueUrl: string, bodies: string[]): Promise<void> {
  const batches: string[][] = [];
  for (let i = 0; i < bodies.length; i += 10) batches.push(bodies.slice(i, i + 10));
  await forEachConcurrent(batches, 4, async (batch) => {
    const res = await sqs().send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: batch.map((MessageBody, i) => ({ Id: String(i), MessageBody })),
      }),
    );
    const failed = res.Failed ?? [];
    if (failed.length > 0) {
      throw new Error(
        `${failed.length} message(s) not sent to ${queueUrl}: ${failed[0]!.Code} ${failed[0]!.Message ?? ''}`,
      );
    }
  });
}
