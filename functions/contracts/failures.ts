import { z } from 'zod';
import { type QueueName, topology } from '../../topology/topology.js';
import { parseS3Notification } from '../core/s3-event.js';
import { warehouseMessageSchema } from './messages.js';

/**
 * Failure records: why a queue message failed, kept next to the dead letter it may become.
 *
 * When a consumer (fetch, etl, enrich, warehouse) fails a message, it writes one small JSON object to
 * the lake bucket under `failures/<queue>/<messageId>.json`, overwritten at each failed attempt. SQS
 * keeps a message's id when its redrive policy moves it to `<queue>-dlq`, so `telemetry-pipeline dlq`
 * finds the reason of every dead letter by the letter's own id. The prefix fires no notification (the
 * lake notifies only `normalized/` and `manifests/`), and the records are not deleted when a retry
 * succeeds: the CLI only reads the records of messages that are in a DLQ, so such a record is never
 * shown, and deleting would cost a request on the success path.
 */

export const objectRefSchema = z.object({
  bucket: z.string().min(1),
  key: z.string().min(1),
  eTag: z.string().optional(),
});
export type ObjectRef = z.infer<typeof objectRefSchema>;

/** What a message is about, as far as its body says. */
export interface MessageAbout {
  /** The objects it names: the S3 notification's, or the lake object of a warehouse message. */
  objects: ObjectRef[];
  /** One line for people: the object (`s3://raw/demo/…/a.log`), a fetch source, or what the body is. */
  summary: string;
}

const fetchBodySchema = z.object({
  factory: z.string().min(1),
  source: z.string().min(1),
  continuation: z.number().optional(),
});

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

/**
 * What a message body is about, for any of the pipeline's queues: S3 notifications (etl, enrich),
 * warehouse messages, fetch messages. Never throws: a body we do not understand says so.
 */
export function describeMessage(body: string): MessageAbout {
  const value = parseJson(body);
  if (value === undefined) return { objects: [], summary: 'body is not JSON' };
  const warehouse = warehouseMessageSchema.safeParse(value);
  if (warehouse.success) {
    const m = warehouse.data;
    if (m.kind === 'files') {
      const objects = m.files.map((f) => ({ bucket: f.bucket, key: f.key, eTag: f.eTag }));
      const first = `s3://${objects[0]!.bucket}/${objects[0]!.key}`;
      return {
        objects,
        summary: `files ${first}${objects.length > 1 ? ` (+${objects.length - 1} more)` : ''}`,
      };
    }
    return {
      objects: [{ bucket: m.bucket, key: m.key, eTag: m.eTag }],
      summary: `${m.kind} s3://${m.bucket}/${m.key}${m.kind === 'data' ? ` (from ${m.sourceKey})` : ''}`,
    };
  }
  const fetch = fetchBodySchema.safeParse(value);
  if (fetch.success) {
    const { factory, source, continuation } = fetch.data;
    return {
      objects: [],
      summary: `fetch ${factory}/${source}${continuation ? ` (continuation ${continuation})` : ''}`,
    };
  }
  try {
    const events = parseS3Notification(value, 'message');
    const objects = events.map((e) => ({ bucket: e.bucket, key: e.key, eTag: e.eTag }));
    if (objects.length === 0) return { objects, summary: 'S3 notification without created objects' };
    const first = `s3://${objects[0]!.bucket}/${objects[0]!.key}`;
    return { objects, summary: objects.length > 1 ? `${first} (+${objects.length - 1} more)` : first };
  } catch {
    return { objects: [], summary: 'not a message of this pipeline' };
  }
}

/** An error as a failure record keeps it: its name, message, code and a few lines of its stack. */
export const recordedErrorSchema = z.object({
  name: z.string(),
  message: z.string(),
  /** `err.code` when it is a string: `ENOTDIR`, `NoSuchKey`, a PermanentObjectError's reason… */
  code: z.string().optional(),
  /** The first lines of the stack (never more than {@link STACK_LINES}). */
  stack: z.string().optional(),
  /** Messages of the `cause` chain, outermost first (at most {@link MAX_CAUSES}). */
  causes: z.array(z.string()).optional(),
});
export type RecordedError = z.infer<typeof recordedErrorSchema>;

export const failureRecordSchema = z.object({
  /** Topology name of the queue the message was consumed from (its DLQ is `<queue>-dlq`). */
  queue: z.enum(Object.keys(topology.queues) as [QueueName, ...QueueName[]]),
  /** SQS message id: the same in the queue and, once dead-lettered, in its DLQ. */
  messageId: z.string().min(1),
  /** The function that failed it. */
  function: z.string().min(1),
  /** What the message was about (see {@link describeMessage}). */
  objects: z.array(objectRefSchema),
  summary: z.string(),
  /**
   * When the first attempt started (SQS's ApproximateFirstReceiveTimestamp). A message is received
   * again only after an attempt failed or timed out, so its failures began then; taken from the
   * message, so that writing a record is one PutObject and never a read.
   */
  firstAttemptAt: z.iso.datetime(),
  /** This (the latest) failure. */
  lastFailureAt: z.iso.datetime(),
  /** Receives so far (SQS's ApproximateReceiveCount): the failed attempt this record describes is the last. */
  attempts: z.number().int().positive(),
  /** The latest attempt's error (each failed attempt overwrites the record). */
  error: recordedErrorSchema,
});
export type FailureRecord = z.infer<typeof failureRecordSchema>;

export const STACK_LINES = 6;
export const MAX_CAUSES = 3;
const MAX_MESSAGE = 2_000;

const clip = (s: string, max: number) => (s.length > max ? `${s.slice(0, max)}…` : s);

/** The parts of a thrown value a failure record keeps. */
export function recordedError(err: unknown): RecordedError {
  if (!(err instanceof Error)) return { name: typeof err, message: clip(String(err), MAX_MESSAGE) };
  const code = (err as { code?: unknown }).code;
  const causes: string[] = [];
  for (let c = err.cause; c !== undefined && causes.length < MAX_CAUSES; ) {
    causes.push(clip(c instanceof Error ? `${c.name}: ${c.message}` : String(c), MAX_MESSAGE));
    c = c instanceof Error ? c.cause : undefined;
  }
  return {
    name: err.name,
    message: clip(err.message, MAX_MESSAGE),
    ...(typeof code === 'string' ? { code } : {}),
    ...(err.stack ? { stack: err.stack.split('\n').slice(0, STACK_LINES).join('\n') } : {}),
    ...(causes.length > 0 ? { causes } : {}),
  };
}
