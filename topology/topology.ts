/**
 * The pipeline's topology, declared once. The local runtime (`local/`) and the SST stacks (`stacks/`)
 * both build from this object, so a batch size or a notification filter changed here changes both.
 */

export type BucketName = 'raw' | 'lake' | 'warehouse';
export type QueueName = 'etl';
export type FunctionName = 'etl';

export interface QueueSpec {
  /** FIFO queues keep one message group in order: the warehouse has exactly one writer. */
  fifo: boolean;
  /** Seconds a received message stays hidden; ≥ 6× the subscriber's timeout as AWS recommends. */
  visibilityTimeoutSeconds: number;
  /** Deliveries before a message is moved to `<name>-dlq`. */
  maxReceiveCount: number;
}

export interface NotificationSpec {
  bucket: BucketName;
  queue: QueueName;
  /** S3 event types, in the `s3:` notation both AWS and MinIO use. */
  events: readonly string[];
  filter: { prefix?: string; suffix?: string };
}

export interface FunctionSpec {
  /** Module under `functions/` exporting `handler`. */
  handler: string;
  memoryMB: number;
  timeoutSeconds: number;
  /** Ephemeral `/tmp` storage in MB. */
  storageMB: number;
  trigger: { queue: QueueName; batchSize: number; batchWindowSeconds: number };
  /** Every resource the function touches; used for SST links (least privilege) and local env. */
  links: readonly (BucketName | QueueName)[];
}

export const topology = {
  buckets: ['raw', 'lake', 'warehouse'] as const satisfies readonly BucketName[],
  queues: {
    etl: { fifo: false, visibilityTimeoutSeconds: 1800, maxReceiveCount: 3 },
  } satisfies Record<QueueName, QueueSpec>,
  notifications: [
    { bucket: 'raw', queue: 'etl', events: ['s3:ObjectCreated:*'], filter: {} },
  ] satisfies NotificationSpec[],
  functions: {
    etl: {
      handler: 'etl',
      memoryMB: 2048,
      timeoutSeconds: 300,
      storageMB: 4096,
      trigger: { queue: 'etl', batchSize: 10, batchWindowSeconds: 0 },
      links: ['raw', 'lake'],
    },
  } satisfies Record<FunctionName, FunctionSpec>,
} as const;

/** Physical queue name: FIFO queues must end in `.fifo`. */
export function queueResourceName(name: QueueName): string {
  return topology.queues[name].fifo ? `${name}.fifo` : name;
}

/** Dead-letter queue of a queue; a FIFO queue's DLQ must be FIFO too. */
export function dlqResourceName(name: QueueName): string {
  return topology.queues[name].fifo ? `${name}-dlq.fifo` : `${name}-dlq`;
}

/** Whether an S3 event name (`s3:ObjectCreated:Put` or `ObjectCreated:Put`) matches a pattern list. */
export function eventMatches(patterns: readonly string[], eventName: string): boolean {
  const name = eventName.startsWith('s3:') ? eventName : `s3:${eventName}`;
  return patterns.some((p) => (p.endsWith('*') ? name.startsWith(p.slice(0, -1)) : name === p));
}

/** Notification routes that fire for an object created in `bucket` under `key`. */
export function routesFor(bucket: string, key: string, eventName: string): NotificationSpec[] {
  return topology.notifications.filter(
    (n) =>
      n.bucket === bucket &&
      eventMatches(n.events, eventName) &&
      key.startsWith((n.filter as { prefix?: string }).prefix ?? '') &&
      key.endsWith((n.filter as { suffix?: string }).suffix ?? ''),
  );
}
