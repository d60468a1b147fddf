import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { type ActionContext, integerIn } from './action-context.js';
import { invalidParameter, missingParameter } from './errors.js';
import { md5OfAttributes, md5OfBody } from './md5.js';
import {
  attributesSize,
  type MessageAttributes,
  messageAttributeValueSchema,
  validateMessageAttributes,
} from './message-attributes.js';
import type { Output } from './protocol.js';
import { queueSettings } from './queue-attributes.js';
import type { QueueRow } from './queue-store.js';
import { validateMessageBody } from './validation.js';

/** A message to send: SendMessage's input, or one entry of SendMessageBatch. */
export const sendEntrySchema = z.object({
  MessageBody: z.string(),
  DelaySeconds: integerIn(0, 900).optional(),
  MessageAttributes: z.record(z.string(), messageAttributeValueSchema).optional(),
  MessageSystemAttributes: z.record(z.string(), messageAttributeValueSchema).optional(),
  MessageDeduplicationId: z.string().optional(),
  MessageGroupId: z.string().optional(),
});
export type SendEntry = z.infer<typeof sendEntrySchema>;

/**
 * The deduplication interval of FIFO queues.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-queues-exactly-once-processing.html
 */
const DEDUPLICATION_INTERVAL_MS = 5 * 60 * 1000;
/** Group and deduplication ids: 1–128 alphanumeric or punctuation characters. */
const FIFO_ID = /^[\x21-\x7e]{1,128}$/;
const NOT_FOR_THIS_QUEUE_TYPE = 'The request include parameter that is not valid for this queue type.';

/** A FIFO sequence number as SQS shows it: a decimal string (here zero-padded to SQS's 20 digits). */
export function formatSequenceNumber(n: number): string {
  return String(n).padStart(20, '0');
}

/** The entry's size as SQS counts it against the message and batch size limits. */
export function entrySize(entry: SendEntry): number {
  return Buffer.byteLength(entry.MessageBody) + attributesSize(entry.MessageAttributes ?? {});
}

/** The only message system attribute SQS accepts, `AWSTraceHeader` (a String). */
function traceHeader(system: MessageAttributes): string | null {
  for (const [name, value] of Object.entries(system)) {
    if (name !== 'AWSTraceHeader' || value.DataType !== 'String' || !value.StringValue) {
      throw invalidParameter('MessageSystemAttributes', name, `Message system attribute ${name} is invalid.`);
    }
  }
  return system.AWSTraceHeader?.StringValue ?? null;
}

function fifoId(name: string, value: string): string {
  if (!FIFO_ID.test(value)) {
    throw invalidParameter(
      name,
      value,
      `${name} can only include alphanumeric and punctuation characters. 1 to 128 in length.`,
    );
  }
  return value;
}

/**
 * Sends one message (to be run in a transaction): validates it, and on a FIFO queue either records it
 * with the queue's next sequence number or — when its deduplication id (explicit, or the SHA-256 of the
 * body with content-based deduplication) was sent within the last 5 minutes — accepts it without
 * enqueueing, answering with the first message's id, as SQS does. Returns SendMessage's output.
 */
export function sendMessage(context: ActionContext, queue: QueueRow, entry: SendEntry, now: number): Output {
  const settings = queueSettings(queue.attributes);
  const attributes = entry.MessageAttributes ?? {};
  const system = entry.MessageSystemAttributes ?? {};
  validateMessageAttributes(attributes);
  validateMessageBody(entry.MessageBody, attributesSize(attributes), settings.maximumMessageSize);
  const trace = traceHeader(system);
  const hasAttributes = Object.keys(attributes).length > 0;
  const messageId = randomUUID();
  const output: Output = {
    MessageId: messageId,
    MD5OfMessageBody: md5OfBody(entry.MessageBody),
    MD5OfMessageAttributes: hasAttributes ? md5OfAttributes(attributes) : undefined,
    MD5OfMessageSystemAttributes: trace === null ? undefined : md5OfAttributes(system),
  };
  const message = {
    queueId: queue.id,
    messageId,
    body: entry.MessageBody,
    attributes: hasAttributes ? JSON.stringify(attributes) : null,
    traceHeader: trace,
    sentAt: now,
    groupId: entry.MessageGroupId === undefined ? null : fifoId('MessageGroupId', entry.MessageGroupId),
  };
  const { store } = context;

  if (!settings.fifo) {
    // Standard queues take a group id (fair queues) but not a deduplication id.
    if (entry.MessageDeduplicationId !== undefined) {
      throw invalidParameter('MessageDeduplicationId', entry.MessageDeduplicationId, NOT_FOR_THIS_QUEUE_TYPE);
    }
    const delay = entry.DelaySeconds ?? settings.delaySeconds;
    store.insertMessage({
      ...message,
      visibleAt: now + delay * 1000,
      deduplicationId: null,
      sequenceNumber: null,
    });
    return output;
  }

  // FIFO queues: the queue's delay only, a group id always, a deduplication id one way or the other.
  if (entry.DelaySeconds !== undefined && entry.DelaySeconds !== 0) {
    throw invalidParameter('DelaySeconds', entry.DelaySeconds, NOT_FOR_THIS_QUEUE_TYPE);
  }
  if (message.groupId === null) throw missingParameter('MessageGroupId');
  let deduplicationId: string;
  if (entry.MessageDeduplicationId !== undefined) {
    deduplicationId = fifoId('MessageDeduplicationId', entry.MessageDeduplicationId);
  } else if (settings.contentBasedDeduplication) {
    deduplicationId = createHash('sha256').update(entry.MessageBody, 'utf8').digest('hex');
  } else {
    throw invalidParameter(
      'MessageDeduplicationId',
      '(none)',
      'The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly',
    );
  }
  store.forgetExpiredDeduplication(queue.id, now);
  const duplicate = store.duplicateOf(queue.id, deduplicationId, now);
  if (duplicate) {
    return {
      ...output,
      MessageId: duplicate.messageId,
      SequenceNumber: formatSequenceNumber(duplicate.sequenceNumber),
    };
  }
  const sequenceNumber = store.nextSequenceNumber(queue.id);
  store.insertMessage({
    ...message,
    visibleAt: now + settings.delaySeconds * 1000,
    deduplicationId,
    sequenceNumber,
  });
  store.rememberDeduplication(
    queue.id,
    deduplicationId,
    messageId,
    sequenceNumber,
    now + DEDUPLICATION_INTERVAL_MS,
  );
  return { ...output, SequenceNumber: formatSequenceNumber(sequenceNumber) };
}
