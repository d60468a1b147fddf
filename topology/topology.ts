/**
 * The pipeline's topology, declared once. The local runtime (`local/`) and the SST stacks (`stacks/`)
 * both build from this object, so a batch size or a notification filter changed here changes both.
 */

export type BucketName = 'raw' | 'lake' | 'warehouse';
export type QueueName = 'fetch' | 'etl' | 'enrich' | 'warehouse';
export type FunctionName = 'schedule' | 'fetch' | 'etl' | 'enrich' | 'warehouse' | 'reconcile' | 'api';

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
  trigger:
    | { queue: QueueName; batchSize: number; batchWindowSeconds: number }
    /** An EventBridge Scheduler expression: `rate(…)` or `cron(…)`. */
    | { schedule: string }
    /** HTTP: a Lambda Function URL deployed, `/api/*` on the local runtime's port. */
    | { url: true };
  /**
   * Every resource the function touches besides its trigger; used for SST links (least privilege).
   * Queues listed here are ones the function sends to (or, for the reconciler, reads the depth of).
   */
  links: { buckets: readonly BucketName[]; queues: readonly QueueName[] };
  /**
   * Queues whose depth, and their dead-letter queues', the function reads for display: it may call
   * `sqs:GetQueueAttributes` on them and nothing else (not a link, which would let it send and receive).
   */
  watches?: readonly QueueName[];
  /**
   * At most this many invocations at once (docs/deploy.md, "Concurrency"). Deployed, a function fed by a
   * standard queue has it as its event source mapping's maximum concurrency (2 at least): Lambda polls no
   * more batches than that and the rest wait in the queue. Reserved concurrency would not do: the poller
   * ignores it, and each batch it hands a function at its limit is throttled — a receive that counts
   * towards the DLQ. Every other function (the crons, the API, the writer on its FIFO queue, which takes
   * one batch at a time of its single message group) has it as reserved concurrency. Locally,
   * invocations of a function run one batch at a time.
   */
  maxConcurrency: number;
}

/** Objects under `prefix` in a bucket expire this many days after they were written. */
export interface RetentionRule {
  bucket: BucketName;
  prefix: string;
  days: number;
}

export const topology = {
  buckets: ['raw', 'lake', 'warehouse'] as const satisfies readonly BucketName[],
  queues: {
    // One message per factory source and run; fetch has a 15-minute budget (6× for the visibility timeout).
    fetch: { fifo: false, visibilityTimeoutSeconds: 5400, maxReceiveCount: 5 },
    etl: { fifo: false, visibilityTimeoutSeconds: 1800, maxReceiveCount: 3 },
    enrich: { fifo: false, visibilityTimeoutSeconds: 1800, maxReceiveCount: 3 },
    // FIFO, one message group: the warehouse file has exactly one writer at a time.
    warehouse: { fifo: true, visibilityTimeoutSeconds: 5400, maxReceiveCount: 5 },
  } satisfies Record<QueueName, QueueSpec>,
  notifications: [
    { bucket: 'raw', queue: 'etl', events: ['s3:ObjectCreated:*'], filter: {} },
    // One event per raw file: its ETL manifest, written last, names every normalized object the file
    // made (enrich does them all in one pass, and the warehouse loads them in one commit), and files
    // with no rows (all rejected, quarantined) reach the warehouse's accounting the same way.
    {
      bucket: 'lake',
      queue: 'enrich',
      events: ['s3:ObjectCreated:*'],
      filter: { prefix: 'manifests/', suffix: '.json' },
    },
  ] satisfies NotificationSpec[],
  /**
   * What expires, in days after an object was written (default; `RETENTION_DAYS` overrides per stage:
   * `retentionRules`). Deployed these are the buckets' S3 lifecycle rules; the local runtime deletes the
   * same objects itself (`local/retention.ts`). Not listed, kept: manifests (the file accounting the
   * reconciler and the warehouse read), reference data, fetch and reconciler state, the warehouse files
   * (the writer deletes bases and level-1 files it no longer names).
   */
  retention: [
    // Raw files: reprocessing needs them; after a month the lake holds what they made.
    { bucket: 'raw', prefix: '', days: 30 },
    // Rejected lines and quarantined files: for the owner to look at, then gone.
    { bucket: 'lake', prefix: 'quarantine/', days: 90 },
    // Failure records of dead letters: SQS keeps a message at most 14 days.
    { bucket: 'lake', prefix: 'failures/', days: 14 },
    // The lake's history (Athena reads all of it; the warehouse only what it loaded).
    { bucket: 'lake', prefix: 'normalized/', days: 730 },
    { bucket: 'lake', prefix: 'enriched/', days: 730 },
  ] satisfies RetentionRule[],
  /**
   * What pages someone (deployed: CloudWatch alarms to the `Alarms` SNS topic; locally: the Prometheus
   * rules in `local/monitoring/alerts.yml`): a dead letter in any DLQ, any function error or throttle,
   * and a queue whose oldest message is older than this many seconds — work stuck, not merely queued.
   */
  alarms: {
    // Above each queue's visibility timeout: a message waiting out one failed attempt counts as old,
    // and one retry must not page anyone.
    oldestMessageSeconds: { fetch: 7200, etl: 3600, enrich: 3600, warehouse: 7200 },
  } satisfies { oldestMessageSeconds: Record<QueueName, number> },
  functions: {
    // Every minute; each source's own cron in factories.yaml decides whether it is due.
    schedule: {
      handler: 'schedule',
      memoryMB: 256,
      timeoutSeconds: 60,
      maxConcurrency: 1,
      storageMB: 512,
      trigger: { schedule: 'rate(1 minute)' },
      links: { buckets: [], queues: ['fetch'] },
    },
    fetch: {
      handler: 'fetch',
      memoryMB: 1024,
      timeoutSeconds: 900,
      maxConcurrency: 2,
      storageMB: 10240,
      // One source per invocation: a slow or failing source never holds up another.
      trigger: { queue: 'fetch', batchSize: 1, batchWindowSeconds: 0 },
      // writes raw/, keeps its state in the lake, enqueues its own continuation
      links: { buckets: ['raw', 'lake'], queues: ['fetch'] },
    },
    etl: {
      handler: 'etl',
      memoryMB: 2048,
      timeoutSeconds: 300,
      maxConcurrency: 20,
      storageMB: 4096,
      trigger: { queue: 'etl', batchSize: 10, batchWindowSeconds: 0 },
      links: { buckets: ['raw', 'lake'], queues: [] },
    },
    enrich: {
      handler: 'enrich',
      memoryMB: 2048,
      timeoutSeconds: 300,
      maxConcurrency: 10,
      storageMB: 4096,
      trigger: { queue: 'enrich', batchSize: 10, batchWindowSeconds: 0 },
      // reads normalized/ and writes enriched/ in the lake, reads baselines from the warehouse bucket
      links: { buckets: ['lake', 'warehouse'], queues: ['warehouse'] },
    },
    warehouse: {
      handler: 'warehouse',
      memoryMB: 3008,
      timeoutSeconds: 900,
      maxConcurrency: 1,
      storageMB: 10240,
      // FIFO event sources take at most 10 messages per batch and no batching window.
      trigger: { queue: 'warehouse', batchSize: 10, batchWindowSeconds: 0 },
      links: { buckets: ['lake', 'warehouse'], queues: [] },
    },
    // Level-triggered recovery: compares the stages and re-emits the events a stage missed (lost or
    // dead-lettered messages, crashes). It lists the buckets whole, hence not every minute.
    reconcile: {
      handler: 'reconcile',
      memoryMB: 1024,
      timeoutSeconds: 900,
      maxConcurrency: 1,
      storageMB: 10240,
      trigger: { schedule: 'rate(15 minutes)' },
      // lists raw and lake, keeps its state in the lake, reads the warehouse ledger; sends to etl and
      // enrich, reads the depth of those and of the warehouse queue
      links: { buckets: ['raw', 'lake', 'warehouse'], queues: ['etl', 'enrich', 'warehouse'] },
    },
    // The dashboard and read API: reads copies of the warehouse files, shows the queues' depths.
    api: {
      handler: 'api',
      memoryMB: 1536,
      timeoutSeconds: 30,
      maxConcurrency: 10,
      storageMB: 4096,
      trigger: { url: true },
      links: { buckets: ['warehouse'], queues: [] },
      watches: ['fetch', 'etl', 'enrich', 'warehouse'],
    },
  } satisfies Record<FunctionName, FunctionSpec>,
} as const;

/**
 * The retention rules of a stage: the topology's defaults, with `overrides` (`RETENTION_DAYS`, e.g.
 * `raw/=7,lake/quarantine/=30`: `<bucket>/<prefix>=<days>`, 0 to keep for good) replacing the days of
 * a rule of the same bucket and prefix. Only those: a rule elsewhere could expire what must stay (the
 * warehouse's base, the manifests, the reconciler's state), and a typo must not add one. Enriched objects
 * are kept at least as long as the normalized ones they come from (else the reconciler would enrich them
 * again). Throws, naming the entry, on anything else.
 */
export function retentionRules(overrides = ''): RetentionRule[] {
  const rules = new Map<string, RetentionRule>(
    topology.retention.map((r) => [`${r.bucket}/${r.prefix}`, { ...r }]),
  );
  const known = [...rules.keys()].join(', ');
  for (const entry of overrides
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const m = /^([a-z]+\/[^=]*)=(\d+)$/.exec(entry);
    const rule = m && rules.get(m[1]!);
    if (!m || !rule) {
      throw new Error(`RETENTION_DAYS: "${entry}" is not <bucket>/<prefix>=<days> for one of ${known}`);
    }
    rule.days = Number(m[2]);
  }
  const forever = (days: number) => (days === 0 ? Number.POSITIVE_INFINITY : days);
  const normalized = rules.get('lake/normalized/')!.days;
  const enriched = rules.get('lake/enriched/')!.days;
  if (forever(enriched) < forever(normalized)) {
    throw new Error(
      `RETENTION_DAYS: lake/enriched/ (${enriched} days) must be kept at least as long as lake/normalized/ (${normalized}): the reconciler would enrich the normalized objects again`,
    );
  }
  return [...rules.values()].filter((r) => r.days > 0);
}

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

/** The name a resource has in SST (and in `Resource.<name>` inside a deployed function). */
export function linkName(kind: 'bucket' | 'queue' | 'dlq', name: string): string {
  const pascal = name.replace(/(^|[-_.])([a-z0-9])/g, (_m, _sep, c: string) => c.toUpperCase());
  return kind === 'bucket' ? pascal : kind === 'queue' ? `${pascal}Queue` : `${pascal}Dlq`;
}

/**
 * `WAREHOUSE_RETENTION_DAYS` of a stage, checked at deploy (a bad value would stop the writer and the
 * reconciler at start-up): whole days, 1 or more, or unset — the warehouse keeps everything.
 */
export function warehouseRetentionDays(value = ''): number | undefined {
  if (value.trim() === '') return undefined;
  const days = Number(value);
  if (!Number.isInteger(days) || days < 1) {
    throw new Error(
      `WAREHOUSE_RETENTION_DAYS: "${value}" is not a number of days (1 or more; unset keeps everything)`,
    );
  }
  return days;
}
