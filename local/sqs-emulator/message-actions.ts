import { z } from 'zod';
import { type Action, type ActionContext, integerIn, parseInput, queueByUrl } from './action-context.js';
import { invalidParameter, SqsError, sqsError } from './errors.js';
import { md5OfAttributes, md5OfBody } from './md5.js';
import { type MessageAttributes, selectMessageAttributes } from './message-attributes.js';
import type { Output } from './protocol.js';
import { queueSettings } from './queue-attributes.js';
import type { MessageRow, QueueRow } from './queue-store.js';
import { decodeReceiptHandle, encodeReceiptHandle } from './receipt-handles.js';
import { takeMessages } from './receive.js';
import { entrySize, formatSequenceNumber, sendEntrySchema, sendMessage } from './send.js';
import { validateBatch } from './validation.js';

/**
 * The most a SendMessageBatch may carry in all (bodies and attributes).
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html
 */
const MAX_BATCH_BYTES = 262_144;

/**
 * Runs `work` for each batch entry in one transaction; an entry that fails with an SQS error is
 * reported in `Failed`, as SQS does, without failing the others.
 */
function batch<E extends { Id: string }>(
  context: ActionContext,
  entries: E[],
  work: (entry: E) => Output,
): Output {
  validateBatch(entries);
  const successful: Output[] = [];
  const failed: Output[] = [];
  context.store.transaction(() => {
    for (const entry of entries) {
      try {
        successful.push({ Id: entry.Id, ...work(entry) });
      } catch (err) {
        if (!(err instanceof SqsError)) throw err;
        failed.push({
          Id: entry.Id,
          SenderFault: err.fault === 'Sender',
          Code: err.code,
          Message: err.message,
        });
      }
    }
  });
  return { Successful: successful, Failed: failed };
}

const sendMessageRequest = sendEntrySchema.extend({ QueueUrl: z.string() });

const SendMessage: Action = (input, context) => {
  const request = parseInput(sendMessageRequest, input);
  const output = context.store.transaction(() => {
    const queue = queueByUrl(context, request.QueueUrl);
    return { queue, output: sendMessage(context, queue, request, Date.now()) };
  });
  context.longPolls.notify(output.queue.id);
  return output.output;
};

const sendMessageBatchRequest = z.object({
  QueueUrl: z.string(),
  Entries: z.array(sendEntrySchema.extend({ Id: z.string() })),
});

const SendMessageBatch: Action = (input, context) => {
  const request = parseInput(sendMessageBatchRequest, input);
  const queue = queueByUrl(context, request.QueueUrl);
  const size = request.Entries.reduce((sum, entry) => sum + entrySize(entry), 0);
  if (size > MAX_BATCH_BYTES) {
    throw sqsError(
      'BatchRequestTooLong',
      `Batch requests cannot be longer than ${MAX_BATCH_BYTES} bytes. You have sent ${size} bytes.`,
    );
  }
  const now = Date.now();
  const output = batch(context, request.Entries, (entry) => sendMessage(context, queue, entry, now));
  context.longPolls.notify(queue.id);
  return output;
};

const visibilityTimeout = integerIn(0, 43_200);

const receiveMessageRequest = z.object({
  QueueUrl: z.string(),
  AttributeNames: z.array(z.string()).optional(),
  MessageSystemAttributeNames: z.array(z.string()).optional(),
  MessageAttributeNames: z.array(z.string()).optional(),
  MaxNumberOfMessages: integerIn(1, 10).optional(),
  VisibilityTimeout: visibilityTimeout.optional(),
  WaitTimeSeconds: integerIn(0, 20).optional(),
});
type ReceiveMessageRequest = z.infer<typeof receiveMessageRequest>;

/**
 * A received message in ReceiveMessage's output, with the system attributes asked for (by
 * `MessageSystemAttributeNames` or the legacy `AttributeNames`) and the message attributes asked for
 * (`MD5OfMessageAttributes` is the digest of those, which is what SDKs check it against).
 */
function receivedMessage(context: ActionContext, m: MessageRow, request: ReceiveMessageRequest): Output {
  const systemNames = [...(request.MessageSystemAttributeNames ?? []), ...(request.AttributeNames ?? [])];
  const system: Record<string, string | undefined> = {
    SenderId: context.names.accountId,
    SentTimestamp: String(m.sentAt),
    ApproximateReceiveCount: String(m.receiveCount),
    ApproximateFirstReceiveTimestamp: String(m.firstReceivedAt!), // set by the receive
    MessageGroupId: m.groupId ?? undefined,
    MessageDeduplicationId: m.deduplicationId ?? undefined,
    SequenceNumber: m.sequenceNumber === null ? undefined : formatSequenceNumber(m.sequenceNumber),
    AWSTraceHeader: m.traceHeader ?? undefined,
    DeadLetterQueueSourceArn: m.deadLetterSourceArn ?? undefined,
  };
  const chosenSystem = Object.fromEntries(
    Object.entries(system).filter(
      ([name, value]) => value !== undefined && (systemNames.includes('All') || systemNames.includes(name)),
    ),
  );
  const stored = m.attributes === null ? {} : (JSON.parse(m.attributes) as MessageAttributes);
  const chosen = selectMessageAttributes(stored, request.MessageAttributeNames ?? []);
  const hasChosen = Object.keys(chosen).length > 0;
  return {
    MessageId: m.messageId,
    ReceiptHandle: encodeReceiptHandle({ queueId: m.queueId, seq: m.seq, token: m.receipt! }),
    MD5OfBody: md5OfBody(m.body),
    Body: m.body,
    Attributes: Object.keys(chosenSystem).length > 0 ? chosenSystem : undefined,
    MD5OfMessageAttributes: hasChosen ? md5OfAttributes(chosen) : undefined,
    MessageAttributes: hasChosen ? chosen : undefined,
  };
}

/**
 * ReceiveMessage, with long polling: when nothing is available it waits (up to `WaitTimeSeconds`, or
 * the queue's `ReceiveMessageWaitTimeSeconds`) for the queue to change or a hidden message's deadline,
 * and returns as soon as there are messages. It gives up, empty, when the client leaves or the
 * emulator stops.
 */
const ReceiveMessage: Action = async (input, context) => {
  const request = parseInput(receiveMessageRequest, input);
  const { store, longPolls, signal } = context;
  const waitSeconds =
    request.WaitTimeSeconds ??
    queueSettings(queueByUrl(context, request.QueueUrl).attributes).receiveMessageWaitTimeSeconds;
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    if (signal.aborted) return {};
    const now = Date.now();
    // The queue is looked up again each time: it may have been reconfigured or deleted meanwhile.
    const { queue, taken } = store.transaction(() => {
      const queue = queueByUrl(context, request.QueueUrl);
      const visibilityTimeout =
        request.VisibilityTimeout ?? queueSettings(queue.attributes).visibilityTimeout;
      return {
        queue,
        taken: takeMessages(context, queue, {
          max: request.MaxNumberOfMessages ?? 1,
          visibilityTimeout,
          now,
        }),
      };
    });
    for (const id of taken.deadLetterQueueIds) longPolls.notify(id);
    if (taken.messages.length > 0) {
      return { Messages: taken.messages.map((m) => receivedMessage(context, m, request)) };
    }
    if (now >= deadline) return {};
    await longPolls.wait(
      queue.id,
      Math.min(deadline, store.nextVisibleAt(queue.id, now) ?? deadline),
      signal,
    );
  }
};

/**
 * The message a receipt handle names (`undefined` once deleted or moved) and the token of the receive
 * that handed the handle out.
 */
function messageOf(
  context: ActionContext,
  queue: QueueRow,
  handle: string,
): { m: MessageRow | undefined; token: string } {
  const receipt = decodeReceiptHandle(handle);
  if (receipt.queueId !== queue.id) {
    throw sqsError(
      'ReceiptHandleIsInvalid',
      `The input receipt handle "${handle}" is not a valid receipt handle.`,
    );
  }
  return { m: context.store.message(queue.id, receipt.seq), token: receipt.token };
}

/**
 * DeleteMessage. A message already deleted is no error. With the handle of an earlier receive (or,
 * on a FIFO queue, once its visibility timeout has passed) SQS does not delete: a standard queue
 * answers success anyway, a FIFO queue that the handle has expired.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessage.html
 * https://repost.aws/knowledge-center/sqs-receipt-handle-error
 */
function deleteMessage(context: ActionContext, queue: QueueRow, handle: string, now: number): void {
  const { m, token } = messageOf(context, queue, handle);
  if (!m) return;
  const current = m.receipt === token;
  if (!queueSettings(queue.attributes).fifo) {
    if (current) context.store.deleteMessage(m.seq);
  } else if (current && m.visibleAt > now) {
    context.store.deleteMessage(m.seq);
  } else {
    throw invalidParameter('ReceiptHandle', handle, 'The receipt handle has expired.');
  }
}

/**
 * ChangeMessageVisibility: hides an in-flight message for `seconds` from now (0: visible at once).
 * A handle of an earlier receive, or of a message gone, is refused as SQS does; a message no longer in
 * flight is `MessageNotInflight`.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html
 */
function changeVisibility(
  context: ActionContext,
  queue: QueueRow,
  handle: string,
  seconds: number,
  now: number,
): void {
  const { m, token } = messageOf(context, queue, handle);
  if (!m || m.receipt !== token) {
    throw invalidParameter(
      'ReceiptHandle',
      handle,
      'Message does not exist or is not available for visibility timeout change.',
    );
  }
  if (m.visibleAt <= now) throw sqsError('MessageNotInflight', "The specified message isn't in flight.");
  context.store.setVisibleAt(m.seq, now + seconds * 1000);
}

/** On a FIFO queue a delete may unlock a message group: parked long polls look again. */
function notifyDeleted(context: ActionContext, queue: QueueRow): void {
  if (queueSettings(queue.attributes).fifo) context.longPolls.notify(queue.id);
}

const deleteMessageRequest = z.object({ QueueUrl: z.string(), ReceiptHandle: z.string() });

const DeleteMessage: Action = (input, context) => {
  const request = parseInput(deleteMessageRequest, input);
  const queue = context.store.transaction(() => {
    const queue = queueByUrl(context, request.QueueUrl);
    deleteMessage(context, queue, request.ReceiptHandle, Date.now());
    return queue;
  });
  notifyDeleted(context, queue);
  return undefined;
};

const deleteMessageBatchRequest = z.object({
  QueueUrl: z.string(),
  Entries: z.array(z.object({ Id: z.string(), ReceiptHandle: z.string() })),
});

const DeleteMessageBatch: Action = (input, context) => {
  const request = parseInput(deleteMessageBatchRequest, input);
  const queue = queueByUrl(context, request.QueueUrl);
  const now = Date.now();
  const output = batch(context, request.Entries, (entry) => {
    deleteMessage(context, queue, entry.ReceiptHandle, now);
    return {};
  });
  notifyDeleted(context, queue);
  return output;
};

const changeMessageVisibilityRequest = z.object({
  QueueUrl: z.string(),
  ReceiptHandle: z.string(),
  VisibilityTimeout: visibilityTimeout,
});

const ChangeMessageVisibility: Action = (input, context) => {
  const request = parseInput(changeMessageVisibilityRequest, input);
  const queue = context.store.transaction(() => {
    const queue = queueByUrl(context, request.QueueUrl);
    changeVisibility(context, queue, request.ReceiptHandle, request.VisibilityTimeout, Date.now());
    return queue;
  });
  // Deadlines moved: parked long polls recompute when to look again.
  context.longPolls.notify(queue.id);
  return undefined;
};

const changeMessageVisibilityBatchRequest = z.object({
  QueueUrl: z.string(),
  Entries: z.array(
    z.object({ Id: z.string(), ReceiptHandle: z.string(), VisibilityTimeout: visibilityTimeout }),
  ),
});

const ChangeMessageVisibilityBatch: Action = (input, context) => {
  const request = parseInput(changeMessageVisibilityBatchRequest, input);
  const queue = queueByUrl(context, request.QueueUrl);
  const now = Date.now();
  const output = batch(context, request.Entries, (entry) => {
    changeVisibility(context, queue, entry.ReceiptHandle, entry.VisibilityTimeout, now);
    return {};
  });
  context.longPolls.notify(queue.id);
  return output;
};

/** The message actions. */
export const messageActions: Record<string, Action> = {
  SendMessage,
  SendMessageBatch,
  ReceiveMessage,
  DeleteMessage,
  DeleteMessageBatch,
  ChangeMessageVisibility,
  ChangeMessageVisibilityBatch,
};
