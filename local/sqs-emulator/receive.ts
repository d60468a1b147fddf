import { type ActionContext, queueByArn } from './action-context.js';
import { queueSettings } from './queue-attributes.js';
import type { MessageRow, QueueRow } from './queue-store.js';
import { newReceiptToken } from './receipt-handles.js';
import { dropExpiredMessages } from './retention.js';

export interface TakeOptions {
  max: number;
  visibilityTimeout: number;
  now: number;
}

export interface Taken {
  /** The received messages, as they now are (new receipt token, count and deadline). */
  messages: MessageRow[];
  /** Dead-letter queues that messages were moved to (their long polls are to be woken). */
  deadLetterQueueIds: number[];
}

/**
 * One receive, as SQS does it: up to `max` visible messages, oldest first, hidden for the visibility
 * timeout. On a FIFO queue, messages come by message group, in order: a group with a message in flight
 * gives nothing, one group gives as many in a row as it has (up to `max`), then the next group; a group
 * whose first message is still hidden gives nothing.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-queues-understanding-logic.html
 *
 * A message whose receive count would exceed the redrive policy's `maxReceiveCount` is moved to the
 * dead-letter queue instead of being returned, at the receive, as SQS does.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html
 *
 * To be run in a transaction.
 */
export function takeMessages(context: ActionContext, queue: QueueRow, options: TakeOptions): Taken {
  const { store, names } = context;
  const { max, visibilityTimeout, now } = options;
  const settings = queueSettings(queue.attributes);
  dropExpiredMessages(store, queue, settings, now);

  const policy = settings.redrivePolicy;
  const dlq = policy && queueByArn(context, policy.deadLetterTargetArn);
  // The policy was checked when set; a DLQ deleted (or re-created as the other type) since is ignored.
  const deadLetterQueue = dlq && queueSettings(dlq.attributes).fifo === settings.fifo ? dlq : undefined;

  const taken: MessageRow[] = [];
  const deadLetterQueueIds = new Set<number>();
  const deadLetter = (m: MessageRow): boolean => {
    if (!policy || !deadLetterQueue || m.receiveCount < policy.maxReceiveCount) return false;
    store.moveMessage(
      m.seq,
      {
        queueId: deadLetterQueue.id,
        sequenceNumber: settings.fifo ? store.nextSequenceNumber(deadLetterQueue.id) : null,
        deadLetterSourceArn: names.arn(queue.name),
        resetReceives: false,
      },
      now,
    );
    deadLetterQueueIds.add(deadLetterQueue.id);
    return true;
  };
  const receive = (m: MessageRow): void => {
    const receipt = newReceiptToken();
    const visibleAt = now + visibilityTimeout * 1000;
    store.markReceived(m.seq, receipt, visibleAt, now);
    taken.push({
      ...m,
      receipt,
      visibleAt,
      receiveCount: m.receiveCount + 1,
      firstReceivedAt: m.firstReceivedAt ?? now,
    });
  };
  /** Takes from `fetch` (oldest first) until `max`, stopping at the first hidden message. */
  const takeFrom = (fetch: (afterSeq: number, limit: number) => MessageRow[]): void => {
    let afterSeq = 0;
    while (taken.length < max) {
      const rows = fetch(afterSeq, max - taken.length);
      if (rows.length === 0) return;
      for (const m of rows) {
        afterSeq = m.seq;
        if (m.visibleAt > now) return;
        if (!deadLetter(m)) receive(m);
      }
    }
  };

  if (settings.fifo) {
    for (const group of store.unlockedGroups(queue.id, now)) {
      if (taken.length >= max) break;
      takeFrom((afterSeq, limit) => store.groupMessages(queue.id, group, afterSeq, limit));
    }
  } else {
    takeFrom((afterSeq, limit) => store.visibleMessages(queue.id, now, afterSeq, limit));
  }
  return { messages: taken, deadLetterQueueIds: [...deadLetterQueueIds] };
}
