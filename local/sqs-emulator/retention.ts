import type { QueueSettings } from './queue-attributes.js';
import type { QueueRow, QueueStore } from './queue-store.js';

/**
 * Deletes the queue's messages older than its `MessageRetentionPeriod`, counted from when they were
 * first sent (a message moved to a dead-letter queue keeps its original timestamp, as on standard
 * queues). Called before a queue's messages are received or counted.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html
 */
export function dropExpiredMessages(
  store: QueueStore,
  queue: QueueRow,
  settings: QueueSettings,
  now: number,
): void {
  store.deleteExpired(queue.id, now - settings.messageRetentionPeriod * 1000);
}
