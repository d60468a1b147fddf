import { createHash } from 'node:crypto';
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ListMessageMoveTasksCommand,
  type ListMessageMoveTasksResultEntry,
  type Message,
  type MessageAttributeValue,
  ReceiveMessageCommand,
  SendMessageCommand,
  StartMessageMoveTaskCommand,
} from '@aws-sdk/client-sqs';
import Table from 'cli-table3';
import {
  describeMessage,
  type FailureRecord,
  failureRecordSchema,
  type MessageAbout,
} from '../functions/contracts/failures.js';
import { failureKey } from '../functions/contracts/keys.js';
import { forEachConcurrent } from '../functions/core/concurrency.js';
import { dlqResourceName, type QueueName, queueResourceName, topology } from '../topology/topology.js';
import type { Target } from './target.js';

/**
 * `telemetry-pipeline dlq`: the dead-letter queues of the pipeline's four queues — what is in them,
 * why each message failed (the failure record its consumer wrote, `contracts/failures.ts`), and moving
 * messages back to their queue.
 *
 * SQS cannot look at a message without receiving it. Listing receives every message with a short
 * visibility timeout and then makes each visible again at once (ChangeMessageVisibility 0), so a DLQ
 * is as it was afterwards — except that SQS counts each receive (`ApproximateReceiveCount`); the
 * receives shown leave out the listing's own. Should the CLI die mid-way, the messages come back by
 * themselves after {@link PEEK_VISIBILITY_SECONDS}. A FIFO DLQ hands out at most 10 messages of one
 * message group while they are received, so only the first 10 of the warehouse's single group show.
 */

export const QUEUES = Object.keys(topology.queues) as QueueName[];

/** How long a listed message stays hidden if the CLI cannot make it visible again. */
export const PEEK_VISIBILITY_SECONDS = 30;

export interface DeadLetter {
  queue: QueueName;
  /** The DLQ's resource name (`etl-dlq`, `warehouse-dlq.fifo`). */
  dlq: string;
  id: string;
  about: MessageAbout;
  /** When it was first sent to its queue (SentTimestamp, kept through the move to the DLQ). */
  sentAt: string | undefined;
  /** Receives before this look (SQS's ApproximateReceiveCount less the look's own receive). */
  receives: number;
  body: string;
  /** SQS system attributes, as received. */
  attributes: Record<string, string>;
  messageAttributes: Record<string, MessageAttributeValue>;
  /** Where its failure record is (or would be). */
  failureUrl: string;
  failure: FailureRecord | undefined;
  /** Set when a failure record exists but could not be read or is not one. */
  failureProblem?: string;
}

export interface DlqListing {
  queue: QueueName;
  dlq: string;
  /** Messages in the DLQ (visible, in flight and delayed) before the listing. */
  depth: number;
  messages: DeadLetter[];
  /** Why fewer messages are listed than the DLQ holds, if they are. */
  note?: string;
}

/** `etl`, `etl-dlq`, `warehouse.fifo`, `warehouse-dlq.fifo` → the topology's queue name. */
export function parseQueue(name: string): QueueName {
  const q = QUEUES.find((q) => [q, queueResourceName(q), dlqResourceName(q), `${q}-dlq`].includes(name));
  if (!q) throw new Error(`unknown queue "${name}": one of ${QUEUES.join(', ')}`);
  return q;
}

const isoTime = (ms: string | number | undefined) => {
  const n = Number(ms);
  return ms === undefined || !Number.isFinite(n) ? undefined : new Date(n).toISOString();
};

async function dlqCounts(url: string): Promise<{ visible: number; depth: number }> {
  const { queueCounts } = await import('../functions/core/sqs.js');
  const c = await queueCounts(url);
  return { visible: c.waiting, depth: c.waiting + c.inFlight + c.delayed };
}

/**
 * Messages received from a queue, each once, hidden for {@link PEEK_VISIBILITY_SECONDS}. Whoever holds
 * it calls {@link release} (in a `finally`) for every message it did not delete.
 */
class Peek {
  readonly received = new Map<string, Message>();

  constructor(
    private readonly target: Target,
    private readonly url: string,
  ) {}

  /**
   * Receives until `expected` messages were seen, a receive brings nothing new, `max` is reached or
   * `done` says so. Long polls of 1 s: a short poll of AWS SQS samples some servers only, and may
   * come back empty while messages wait.
   */
  async receive(opts: { expected: number; max: number; done?: () => boolean }): Promise<void> {
    while (this.received.size < Math.min(opts.expected, opts.max) && !opts.done?.()) {
      const res = await this.target.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: this.url,
          MaxNumberOfMessages: Math.min(10, opts.max - this.received.size),
          VisibilityTimeout: PEEK_VISIBILITY_SECONDS,
          WaitTimeSeconds: 1,
          MessageSystemAttributeNames: ['All'],
          MessageAttributeNames: ['All'],
        }),
      );
      let fresh = 0;
      for (const m of res.Messages ?? []) {
        if (!this.received.has(m.MessageId!)) fresh++;
        // The latest receipt handle is the one that can change its visibility.
        this.received.set(m.MessageId!, m);
      }
      if (fresh === 0) return;
    }
  }

  /** Makes the messages visible again (those not deleted), at once. */
  async release(): Promise<void> {
    const entries = [...this.received.values()];
    this.received.clear();
    for (let i = 0; i < entries.length; i += 10) {
      await this.target.sqs
        .send(
          new ChangeMessageVisibilityBatchCommand({
            QueueUrl: this.url,
            Entries: entries
              .slice(i, i + 10)
              .map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle!, VisibilityTimeout: 0 })),
          }),
        )
        // A message whose receipt expired is visible already; the others come back after the timeout.
        .catch(() => undefined);
    }
  }
}

async function readFailure(
  target: Target,
  queue: QueueName,
  id: string,
): Promise<Pick<DeadLetter, 'failure' | 'failureProblem'>> {
  const { getJson } = await import('../functions/core/s3.js');
  let record: unknown;
  try {
    record = await getJson(target.buckets.lake, failureKey(queue, id));
  } catch (err) {
    return {
      failure: undefined,
      failureProblem: `cannot read the failure record: ${(err as Error).message}`,
    };
  }
  if (record === undefined) return { failure: undefined };
  const parsed = failureRecordSchema.safeParse(record);
  return parsed.success
    ? { failure: parsed.data }
    : { failure: undefined, failureProblem: 'the failure record is not one of this release' };
}

async function toDeadLetter(
  target: Target,
  queue: QueueName,
  m: Message,
  withFailure: boolean,
): Promise<DeadLetter> {
  const attributes = (m.Attributes ?? {}) as Record<string, string>;
  const body = m.Body ?? '';
  return {
    queue,
    dlq: dlqResourceName(queue),
    id: m.MessageId!,
    about: describeMessage(body),
    sentAt: isoTime(attributes.SentTimestamp),
    receives: Math.max(0, Number(attributes.ApproximateReceiveCount ?? 1) - 1),
    body,
    attributes,
    messageAttributes: m.MessageAttributes ?? {},
    failureUrl: `s3://${target.buckets.lake}/${failureKey(queue, m.MessageId!)}`,
    ...(withFailure ? await readFailure(target, queue, m.MessageId!) : { failure: undefined }),
  };
}

async function toDeadLetters(
  target: Target,
  queue: QueueName,
  messages: Message[],
  withFailure = true,
): Promise<DeadLetter[]> {
  const out: DeadLetter[] = new Array(messages.length);
  await forEachConcurrent(messages, 8, async (m, i) => {
    out[i] = await toDeadLetter(target, queue, m, withFailure);
  });
  return out.sort((a, b) => (a.sentAt ?? '').localeCompare(b.sentAt ?? ''));
}

function fifoNote(queue: QueueName, listed: number, visible: number): string | undefined {
  if (listed >= visible) return undefined;
  return topology.queues[queue].fifo
    ? `${listed} of ${visible} shown: a FIFO queue hands out at most 10 messages of a message group until they are deleted (redrive these to see the next)`
    : `${listed} of ${visible} shown`;
}

/** The dead letters of one queue, each with its failure record; the DLQ is left as it was. */
export async function listDeadLetters(
  target: Target,
  queue: QueueName,
  opts: { limit?: number; withFailures?: boolean } = {},
): Promise<DlqListing> {
  const url = target.dlqUrls[queue];
  const { visible, depth } = await dlqCounts(url);
  const peek = new Peek(target, url);
  let messages: Message[];
  try {
    if (visible > 0) await peek.receive({ expected: visible, max: opts.limit ?? 100 });
    messages = [...peek.received.values()];
  } finally {
    await peek.release();
  }
  const listing: DlqListing = {
    queue,
    dlq: dlqResourceName(queue),
    depth,
    messages: await toDeadLetters(target, queue, messages, opts.withFailures ?? true),
  };
  const note =
    messages.length < visible && messages.length === (opts.limit ?? 100)
      ? `${messages.length} of ${visible} shown (--limit)`
      : fifoNote(queue, messages.length, visible);
  if (note) listing.note = note;
  if (depth > visible) {
    const hidden = `${depth - visible} in flight or delayed (being received by someone else?), not shown`;
    listing.note = listing.note ? `${listing.note}; ${hidden}` : hidden;
  }
  return listing;
}

/** One dead letter, found by id (the DLQ is left as it was); `undefined` if it is not there. */
export async function showDeadLetter(
  target: Target,
  queue: QueueName,
  id: string,
): Promise<{ letter: DeadLetter | undefined; looked: number; depth: number }> {
  const url = target.dlqUrls[queue];
  const { visible, depth } = await dlqCounts(url);
  const peek = new Peek(target, url);
  let found: Message | undefined;
  let looked = 0;
  try {
    await peek.receive({
      expected: visible,
      max: Number.POSITIVE_INFINITY,
      done: () => peek.received.has(id),
    });
    found = peek.received.get(id);
    looked = peek.received.size;
  } finally {
    await peek.release();
  }
  return { letter: found && (await toDeadLetter(target, queue, found, true)), looked, depth };
}

export interface MovedLetter {
  id: string;
  /** Its id in the source queue (a message sent again has a new one). */
  newId: string | undefined;
  summary: string;
}

export interface RedriveResult {
  queue: QueueName;
  from: string;
  to: string;
  method: 'by-id' | 'move-task';
  moved: MovedLetter[];
  /** Ids asked for that are not in the DLQ (or not among what a FIFO DLQ hands out). */
  notFound: string[];
  /** Messages found that could not be moved, with why (they stay in the DLQ). */
  failed: { id: string; error: string }[];
  /** The move task's report (method `move-task`). */
  task?: { status: string; moved: number; toMove: number; failureReason?: string };
}

/**
 * Sends a dead letter back to its queue, then deletes it from the DLQ (a crash in between leaves it
 * in both: every stage is idempotent, a duplicate costs one check). Body and message attributes are
 * kept; on a FIFO queue its message group too, with a new deduplication id (the original one would be
 * dropped by SQS within its 5-minute window).
 */
async function moveBack(target: Target, queue: QueueName, m: Message): Promise<string | undefined> {
  const fifo = topology.queues[queue].fifo;
  const group = m.Attributes?.MessageGroupId;
  if (fifo && !group) throw new Error('no MessageGroupId on a message of a FIFO queue');
  const sent = await target.sqs.send(
    new SendMessageCommand({
      QueueUrl: target.queueUrls[queue],
      MessageBody: m.Body ?? '',
      ...(m.MessageAttributes && Object.keys(m.MessageAttributes).length > 0
        ? { MessageAttributes: m.MessageAttributes }
        : {}),
      ...(fifo
        ? {
            MessageGroupId: group,
            MessageDeduplicationId: createHash('sha256')
              .update(`redrive\u0000${m.MessageId}\u0000${Date.now()}`)
              .digest('hex'),
          }
        : {}),
    }),
  );
  await target.sqs.send(
    new DeleteMessageCommand({ QueueUrl: target.dlqUrls[queue], ReceiptHandle: m.ReceiptHandle! }),
  );
  return sent.MessageId;
}

/** Moves the dead letters with these ids (or every one, `ids` undefined) back by receive, send, delete. */
async function redriveByReceive(
  target: Target,
  queue: QueueName,
  ids: readonly string[] | undefined,
): Promise<RedriveResult> {
  const url = target.dlqUrls[queue];
  const { visible } = await dlqCounts(url);
  const peek = new Peek(target, url);
  const wanted = ids && new Set(ids);
  const result: RedriveResult = {
    queue,
    from: dlqResourceName(queue),
    to: queueResourceName(queue),
    method: 'by-id',
    moved: [],
    notFound: [],
    failed: [],
  };
  try {
    await peek.receive({
      expected: wanted ? Number.POSITIVE_INFINITY : visible,
      max: Number.POSITIVE_INFINITY,
      done: () => !!wanted && [...wanted].every((id) => peek.received.has(id)),
    });
    // Oldest first: on a FIFO queue they go back in the order they came.
    const found = [...peek.received.values()]
      .filter((m) => !wanted || wanted.has(m.MessageId!))
      .sort((a, b) => Number(a.Attributes?.SentTimestamp ?? 0) - Number(b.Attributes?.SentTimestamp ?? 0));
    for (const m of found) {
      try {
        const newId = await moveBack(target, queue, m);
        peek.received.delete(m.MessageId!);
        result.moved.push({ id: m.MessageId!, newId, summary: describeMessage(m.Body ?? '').summary });
      } catch (err) {
        result.failed.push({ id: m.MessageId!, error: (err as Error).message });
      }
    }
    result.notFound = (ids ?? []).filter((id) => !found.some((m) => m.MessageId === id));
  } finally {
    await peek.release();
  }
  return result;
}

/** Errors of an SQS that has no message move tasks (ElasticMQ before 1.5, other emulators). */
function unsupported(err: unknown): boolean {
  const e = err as { name?: string; message?: string };
  return (
    /InvalidAction|UnsupportedOperation|UnknownOperation|NotImplemented/i.test(e.name ?? '') ||
    /not (valid|supported|implemented)/i.test(e.message ?? '')
  );
}

/** Seconds to wait for a move task to finish before reporting it as still running. */
const MOVE_TASK_WAIT_SECONDS = 60;

/**
 * Every dead letter back to its queue: an SQS message move task (StartMessageMoveTask, which keeps
 * ids and attributes and moves at SQS's pace), or, where the SQS in use has none, receive, send and
 * delete. What is about to move is listed first, for the report.
 */
async function redriveAll(target: Target, queue: QueueName): Promise<RedriveResult> {
  const before = await listDeadLetters(target, queue, { limit: 1000, withFailures: false });
  const dlqArn = (
    await target.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: target.dlqUrls[queue], AttributeNames: ['QueueArn'] }),
    )
  ).Attributes?.QueueArn;
  if (!dlqArn) throw new Error(`${dlqResourceName(queue)}: no QueueArn`);
  try {
    await target.sqs.send(new StartMessageMoveTaskCommand({ SourceArn: dlqArn }));
  } catch (err) {
    if (unsupported(err)) return redriveByReceive(target, queue, undefined);
    throw err;
  }
  let task: ListMessageMoveTasksResultEntry | undefined;
  for (let waited = 0; ; waited++) {
    task = (await target.sqs.send(new ListMessageMoveTasksCommand({ SourceArn: dlqArn, MaxResults: 1 })))
      .Results?.[0];
    if (task?.Status !== 'RUNNING' || waited >= MOVE_TASK_WAIT_SECONDS) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return {
    queue,
    from: dlqResourceName(queue),
    to: queueResourceName(queue),
    method: 'move-task',
    // The task moves the messages themselves: SQS gives no per-message report.
    moved: before.messages.map((m) => ({ id: m.id, newId: undefined, summary: m.about.summary })),
    notFound: [],
    failed: [],
    task: {
      status: task?.Status ?? 'unknown',
      moved: task?.ApproximateNumberOfMessagesMoved ?? 0,
      toMove: task?.ApproximateNumberOfMessagesToMove ?? before.depth,
      ...(task?.FailureReason ? { failureReason: task.FailureReason } : {}),
    },
  };
}

export async function redrive(
  target: Target,
  queue: QueueName,
  opts: { ids?: readonly string[]; all?: boolean },
): Promise<RedriveResult> {
  const ids = opts.ids ?? [];
  if (opts.all && ids.length > 0) throw new Error('give either --id or --all, not both');
  if (opts.all) return redriveAll(target, queue);
  if (ids.length === 0) throw new Error('say which messages: --id <id> (repeatable) or --all');
  return redriveByReceive(target, queue, ids);
}

// ---- the command's output ----

type Out = (text: string) => void;

const clip = (s: string, max: number) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);
const table = (head: string[], colWidths?: (number | null)[]) =>
  new Table({
    head,
    style: { head: [], border: [] },
    ...(colWidths ? { colWidths, wordWrap: true, wrapOnWordBoundary: false } : {}),
  });

function errorLine(l: DeadLetter): string {
  const f = l.failure;
  if (!f) return l.failureProblem ?? 'no error recorded';
  return `${f.attempts} attempt${f.attempts === 1 ? '' : 's'}, the last at ${shortTime(f.lastFailureAt)}: ${f.error.name}: ${f.error.message}`;
}

/** `2026-12-07T03:41:56.172Z` → `2026-12-07 03:41:56Z`: for tables. */
const shortTime = (iso: string | undefined) => (iso ? iso.replace('T', ' ').replace(/\.\d{3}Z$/, 'Z') : '');

/** The JSON of a dead letter in `dlq list --json` (everything but the raw body and attributes). */
function listedJson(l: DeadLetter) {
  return {
    id: l.id,
    about: l.about.summary,
    objects: l.about.objects,
    sentAt: l.sentAt ?? null,
    receives: l.receives,
    error: l.failure ? l.failure.error : null,
    failure: l.failure ?? null,
    ...(l.failureProblem ? { failureProblem: l.failureProblem } : {}),
  };
}

/** `dlq list [<queue>]`; returns the exit code. */
export async function runDlqList(
  target: Target,
  queue: string | undefined,
  opts: { json?: boolean; limit?: number },
  out: Out,
): Promise<number> {
  const queues = queue ? [parseQueue(queue)] : QUEUES;
  if (opts.limit !== undefined && !(Number.isInteger(opts.limit) && opts.limit > 0)) {
    throw new Error('--limit must be a positive whole number');
  }
  const listings: DlqListing[] = [];
  for (const q of queues) listings.push(await listDeadLetters(target, q, { limit: opts.limit }));
  if (opts.json) {
    out(
      `${JSON.stringify(
        listings.map((l) => ({
          queue: l.queue,
          dlq: l.dlq,
          depth: l.depth,
          ...(l.note ? { note: l.note } : {}),
          messages: l.messages.map(listedJson),
        })),
        null,
        2,
      )}\n`,
    );
    return 0;
  }
  out(`Dead letters in ${target.label}\n`);
  for (const l of listings) {
    out(`\n${l.dlq}: ${l.depth === 0 ? 'empty' : `${l.depth} message${l.depth === 1 ? '' : 's'}`}\n`);
    if (l.messages.length === 0) continue;
    const t = table(['id', 'about', 'sent', 'receives', 'error'], [38, 40, 22, 10, 64]);
    for (const m of l.messages) {
      t.push([
        m.id,
        clip(m.about.summary, 200),
        shortTime(m.sentAt),
        String(m.receives),
        clip(errorLine(m), 400),
      ]);
    }
    out(`${t.toString()}\n`);
    if (l.note) out(`(${l.note})\n`);
  }
  return 0;
}

function prettyBody(body: string): string {
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}

/** `dlq show <queue> <id>`; returns the exit code. */
export async function runDlqShow(
  target: Target,
  queue: string,
  id: string,
  opts: { json?: boolean },
  out: Out,
): Promise<number> {
  const q = parseQueue(queue);
  const { letter, looked, depth } = await showDeadLetter(target, q, id);
  if (!letter) {
    throw new Error(
      `no message ${id} in ${dlqResourceName(q)} (${looked} of ${depth} message(s) looked at)${
        topology.queues[q].fifo && looked < depth
          ? ': a FIFO queue hands out only the first 10 messages of a group'
          : ''
      }`,
    );
  }
  if (opts.json) {
    out(`${JSON.stringify({ ...letter, body: parseOr(letter.body) }, null, 2)}\n`);
    return 0;
  }
  const head = table([]);
  head.push(
    ['message', letter.id],
    ['queue', `${letter.dlq} (from ${queueResourceName(q)})`],
    ['about', letter.about.summary],
    ...letter.about.objects.map((o) => [
      'object',
      `s3://${o.bucket}/${o.key}${o.eTag ? ` (ETag ${o.eTag})` : ''}`,
    ]),
    ['sent', letter.sentAt ?? ''],
    ['receives', String(letter.receives)],
  );
  out(`${head.toString()}\n\nbody:\n${prettyBody(letter.body)}\n\nattributes:\n`);
  const attrs = table(['attribute', 'value']);
  for (const [k, v] of Object.entries(letter.attributes)) {
    attrs.push([k, /Timestamp$/.test(k) ? `${v} (${isoTime(v) ?? '?'})` : v]);
  }
  for (const [k, v] of Object.entries(letter.messageAttributes)) {
    attrs.push([`${k} (message attribute, ${v.DataType})`, v.StringValue ?? '(binary)']);
  }
  out(`${attrs.toString()}\n\nfailure record (${letter.failureUrl}):\n`);
  const f = letter.failure;
  if (!f) {
    out(
      `${letter.failureProblem ?? 'no error recorded: the function never settled this message (a time-out, out of memory, a failed start) or ran a release that kept no records; see its logs'}\n`,
    );
    return 0;
  }
  const ft = table([], [16, 100]);
  ft.push(
    ['function', f.function],
    ['attempts', String(f.attempts)],
    ['first attempt', f.firstAttemptAt],
    ['last failure', f.lastFailureAt],
    ['error', `${f.error.name}: ${f.error.message}`],
    ...(f.error.code ? [['code', f.error.code]] : []),
    ...(f.error.causes ?? []).map((c) => ['caused by', c]),
    ...(f.error.stack ? [['stack', f.error.stack]] : []),
  );
  out(`${ft.toString()}\n`);
  return 0;
}

function parseOr(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return body;
  }
}

/** `dlq redrive <queue> (--id <id>… | --all)`; returns the exit code (1 if an id was not moved). */
export async function runDlqRedrive(
  target: Target,
  queue: string,
  opts: { id?: string[]; all?: boolean; json?: boolean },
  out: Out,
): Promise<number> {
  const q = parseQueue(queue);
  const r = await redrive(target, q, { ids: opts.id, all: opts.all });
  const code = r.notFound.length > 0 || r.failed.length > 0 || r.task?.status === 'FAILED' ? 1 : 0;
  if (opts.json) {
    out(`${JSON.stringify(r, null, 2)}\n`);
    return code;
  }
  if (r.task) {
    out(
      `${r.from} → ${r.to}: message move task ${r.task.status}, ${r.task.moved} of ${r.task.toMove} moved${
        r.task.failureReason ? ` (${r.task.failureReason})` : ''
      }${r.task.status === 'RUNNING' ? ' so far; it goes on in SQS' : ''}\n`,
    );
  } else {
    out(`${r.from} → ${r.to}: ${r.moved.length} message${r.moved.length === 1 ? '' : 's'} moved\n`);
  }
  if (r.moved.length > 0) {
    const t = table(r.method === 'by-id' ? ['id in the DLQ', 'sent again as', 'about'] : ['id', 'about']);
    for (const m of r.moved) {
      t.push(r.method === 'by-id' ? [m.id, m.newId ?? '', m.summary] : [m.id, m.summary]);
    }
    out(`${t.toString()}\n`);
  }
  for (const id of r.notFound) out(`not found in ${r.from}: ${id}\n`);
  for (const f of r.failed) out(`not moved: ${f.id}: ${f.error}\n`);
  return code;
}
