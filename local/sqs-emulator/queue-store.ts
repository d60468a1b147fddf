import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { DatabaseSync, SQLInputValue, StatementSync } from 'node:sqlite';
import { openDatabase, transaction } from '../sqlite.js';
import type { QueueAttributes } from './queue-attributes.js';

/**
 * The emulator's state, in one SQLite database: the truth for every queue, message, deduplication
 * record and message move task. Every call either reads or commits before it returns, and callers
 * answer a request only after that, so an acknowledged change survives a crash of the process.
 *
 * WAL with `synchronous = NORMAL`: a commit is in the operating system once the call returns (safe
 * against the process being killed), but not fsynced (a power loss may lose the last commits) — enough
 * for a local runtime. https://www.sqlite.org/wal.html#durability
 */
const SCHEMA_VERSION = 1;
const SCHEMA = `
  CREATE TABLE queues (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    attributes TEXT NOT NULL,               -- canonical attributes, JSON
    created_at INTEGER NOT NULL,            -- epoch seconds, as SQS reports it
    modified_at INTEGER NOT NULL,
    last_sequence_number INTEGER NOT NULL DEFAULT 0
  ) STRICT;
  CREATE TABLE messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order (never reused): FIFO order within a group
    queue_id INTEGER NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT,                        -- message attributes, JSON
    trace_header TEXT,                      -- the AWSTraceHeader system attribute
    sent_at INTEGER NOT NULL,               -- epoch ms
    visible_at INTEGER NOT NULL,            -- epoch ms: end of the delay, or of the visibility timeout
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_received_at INTEGER,
    receipt TEXT,                           -- token of the latest receive
    group_id TEXT,
    deduplication_id TEXT,
    sequence_number INTEGER,
    dead_letter_source_arn TEXT             -- queue it was dead-lettered from
  ) STRICT;
  CREATE INDEX messages_by_visibility ON messages(queue_id, visible_at);
  CREATE INDEX messages_in_order ON messages(queue_id, seq);
  CREATE INDEX messages_by_group ON messages(queue_id, group_id, seq);
  CREATE TABLE deduplication (
    queue_id INTEGER NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
    deduplication_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    sequence_number INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (queue_id, deduplication_id)
  ) STRICT;
  CREATE INDEX deduplication_by_expiry ON deduplication(queue_id, expires_at);
  CREATE TABLE move_tasks (
    handle TEXT PRIMARY KEY,
    source_arn TEXT NOT NULL,
    destination_arn TEXT,
    max_per_second INTEGER,
    status TEXT NOT NULL,
    moved INTEGER NOT NULL,
    to_move INTEGER NOT NULL,
    failure_reason TEXT,
    started_at INTEGER NOT NULL
  ) STRICT;
`;

export interface QueueRow {
  id: number;
  name: string;
  attributes: QueueAttributes;
  /** Epoch seconds. */
  createdAt: number;
  modifiedAt: number;
}

export interface MessageRow {
  seq: number;
  queueId: number;
  messageId: string;
  body: string;
  attributes: string | null;
  traceHeader: string | null;
  sentAt: number;
  visibleAt: number;
  receiveCount: number;
  firstReceivedAt: number | null;
  receipt: string | null;
  groupId: string | null;
  deduplicationId: string | null;
  sequenceNumber: number | null;
  deadLetterSourceArn: string | null;
}

export type NewMessage = Omit<
  MessageRow,
  'seq' | 'receiveCount' | 'firstReceivedAt' | 'receipt' | 'deadLetterSourceArn'
>;

/** Where {@link QueueStore.moveMessage} puts a message. */
export interface MoveTarget {
  queueId: number;
  sequenceNumber: number | null;
  /** Set when dead-lettering (the queue it came from); `null` when moving it back. */
  deadLetterSourceArn: string | null;
  /** A message moved back by a move task starts over (otherwise it would be dead-lettered again). */
  resetReceives: boolean;
}

export interface MessageCounts {
  visible: number;
  inFlight: number;
  delayed: number;
}

export interface MoveTaskRow {
  handle: string;
  sourceArn: string;
  destinationArn: string | null;
  maxPerSecond: number | null;
  status: string;
  moved: number;
  toMove: number;
  failureReason: string | null;
  startedAt: number;
}

const MESSAGE_COLUMNS = `seq, queue_id AS queueId, message_id AS messageId, body, attributes,
  trace_header AS traceHeader, sent_at AS sentAt, visible_at AS visibleAt, receive_count AS receiveCount,
  first_received_at AS firstReceivedAt, receipt, group_id AS groupId, deduplication_id AS deduplicationId,
  sequence_number AS sequenceNumber, dead_letter_source_arn AS deadLetterSourceArn`;
const MOVE_TASK_COLUMNS = `handle, source_arn AS sourceArn, destination_arn AS destinationArn,
  max_per_second AS maxPerSecond, status, moved, to_move AS toMove, failure_reason AS failureReason,
  started_at AS startedAt`;
const QUEUE_COLUMNS = 'id, name, attributes, created_at AS createdAt, modified_at AS modifiedAt';

type StoredQueue = Omit<QueueRow, 'attributes'> & { attributes: string };

/** SQLite access for the emulator: schema and statements, no SQS semantics. */
export class QueueStore {
  private readonly db: DatabaseSync;
  private readonly statements = new Map<string, StatementSync>();

  /** Opens (creating if needed) `sqs.sqlite` in `dir`. */
  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    this.db = openDatabase(join(dir, 'sqs.sqlite'), SCHEMA, SCHEMA_VERSION);
  }

  close(): void {
    this.db.close();
  }

  /** Runs `work` in one write transaction, committed before this returns. */
  transaction<T>(work: () => T): T {
    return transaction(this.db, work);
  }

  private statement(sql: string): StatementSync {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  /** Rows of a SELECT whose column aliases are the fields of `T`. */
  private all<T>(sql: string, ...params: SQLInputValue[]): T[] {
    return this.statement(sql).all(...params) as T[];
  }

  private one<T>(sql: string, ...params: SQLInputValue[]): T | undefined {
    return this.statement(sql).get(...params) as T | undefined;
  }

  private run(sql: string, ...params: SQLInputValue[]): number {
    return Number(this.statement(sql).run(...params).changes);
  }

  // Queues

  private static toQueueRow(row: StoredQueue | undefined): QueueRow | undefined {
    return row && { ...row, attributes: JSON.parse(row.attributes) as QueueAttributes };
  }

  createQueue(name: string, attributes: QueueAttributes, nowSeconds: number): QueueRow {
    this.run(
      'INSERT INTO queues (name, attributes, created_at, modified_at) VALUES (?, ?, ?, ?)',
      name,
      JSON.stringify(attributes),
      nowSeconds,
      nowSeconds,
    );
    return this.queueByName(name)!;
  }

  queueByName(name: string): QueueRow | undefined {
    return QueueStore.toQueueRow(this.one(`SELECT ${QUEUE_COLUMNS} FROM queues WHERE name = ?`, name));
  }

  /** All queues, by name. */
  queues(): QueueRow[] {
    return this.all<StoredQueue>(`SELECT ${QUEUE_COLUMNS} FROM queues ORDER BY name`).map(
      (row) => QueueStore.toQueueRow(row)!,
    );
  }

  setQueueAttributes(queueId: number, attributes: QueueAttributes, nowSeconds: number): void {
    this.run(
      'UPDATE queues SET attributes = ?, modified_at = ? WHERE id = ?',
      JSON.stringify(attributes),
      nowSeconds,
      queueId,
    );
  }

  deleteQueue(queueId: number): void {
    this.run('DELETE FROM queues WHERE id = ?', queueId);
  }

  /** The queue's next FIFO sequence number (strictly increasing, persisted). */
  nextSequenceNumber(queueId: number): number {
    return this.one<{ n: number }>(
      'UPDATE queues SET last_sequence_number = last_sequence_number + 1 WHERE id = ? RETURNING last_sequence_number AS n',
      queueId,
    )!.n;
  }

  // Messages

  insertMessage(m: NewMessage): void {
    this.run(
      `INSERT INTO messages (queue_id, message_id, body, attributes, trace_header, sent_at, visible_at,
         group_id, deduplication_id, sequence_number)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      m.queueId,
      m.messageId,
      m.body,
      m.attributes,
      m.traceHeader,
      m.sentAt,
      m.visibleAt,
      m.groupId,
      m.deduplicationId,
      m.sequenceNumber,
    );
  }

  message(queueId: number, seq: number): MessageRow | undefined {
    return this.one(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE queue_id = ? AND seq = ?`, queueId, seq);
  }

  /** Visible messages after `afterSeq`, oldest first (`limit` -1: all). */
  visibleMessages(queueId: number, now: number, afterSeq: number, limit: number): MessageRow[] {
    return this.all(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE queue_id = ? AND visible_at <= ? AND seq > ?
       ORDER BY seq LIMIT ?`,
      queueId,
      now,
      afterSeq,
      limit,
    );
  }

  /**
   * FIFO message groups with no message in flight, oldest first: the groups a receive may take from.
   */
  unlockedGroups(queueId: number, now: number): string[] {
    return this.all<{ groupId: string }>(
      `SELECT group_id AS groupId FROM messages WHERE queue_id = ?
       GROUP BY group_id HAVING SUM(receive_count > 0 AND visible_at > ?) = 0 ORDER BY MIN(seq)`,
      queueId,
      now,
    ).map((r) => r.groupId);
  }

  /** Messages of a FIFO group after `afterSeq`, in order, visible or not. */
  groupMessages(queueId: number, groupId: string, afterSeq: number, limit: number): MessageRow[] {
    return this.all(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE queue_id = ? AND group_id = ? AND seq > ?
       ORDER BY seq LIMIT ?`,
      queueId,
      groupId,
      afterSeq,
      limit,
    );
  }

  markReceived(seq: number, receipt: string, visibleAt: number, now: number): void {
    this.run(
      `UPDATE messages SET receipt = ?, visible_at = ?, receive_count = receive_count + 1,
         first_received_at = COALESCE(first_received_at, ?) WHERE seq = ?`,
      receipt,
      visibleAt,
      now,
      seq,
    );
  }

  setVisibleAt(seq: number, visibleAt: number): void {
    this.run('UPDATE messages SET visible_at = ? WHERE seq = ?', visibleAt, seq);
  }

  deleteMessage(seq: number): void {
    this.run('DELETE FROM messages WHERE seq = ?', seq);
  }

  /** Moves a message to the end of another queue (a new `seq`), visible at once. */
  moveMessage(seq: number, to: MoveTarget, now: number): void {
    this.run(
      `INSERT INTO messages (queue_id, message_id, body, attributes, trace_header, sent_at, visible_at,
         receive_count, first_received_at, group_id, deduplication_id, sequence_number, dead_letter_source_arn)
       SELECT ?1, message_id, body, attributes, trace_header, sent_at, ?2,
         IIF(?3, 0, receive_count), IIF(?3, NULL, first_received_at), group_id, deduplication_id, ?4, ?5
       FROM messages WHERE seq = ?6`,
      to.queueId,
      now,
      to.resetReceives ? 1 : 0,
      to.sequenceNumber,
      to.deadLetterSourceArn,
      seq,
    );
    this.deleteMessage(seq);
  }

  /** Deletes the queue's messages sent at or before `sentBefore` (retention). */
  deleteExpired(queueId: number, sentBefore: number): void {
    this.run('DELETE FROM messages WHERE queue_id = ? AND sent_at <= ?', queueId, sentBefore);
  }

  purge(queueId: number): void {
    this.run('DELETE FROM messages WHERE queue_id = ?', queueId);
  }

  /** Makes every in-flight message of every queue visible now; returns how many. */
  releaseInFlight(now: number): number {
    return this.run(
      'UPDATE messages SET visible_at = ? WHERE receive_count > 0 AND visible_at > ?',
      now,
      now,
    );
  }

  counts(queueId: number, now: number): MessageCounts {
    const row = this.one<MessageCounts>(
      `SELECT COALESCE(SUM(visible_at <= ?1), 0) AS visible,
         COALESCE(SUM(visible_at > ?1 AND receive_count > 0), 0) AS inFlight,
         COALESCE(SUM(visible_at > ?1 AND receive_count = 0), 0) AS delayed
       FROM messages WHERE queue_id = ?2`,
      now,
      queueId,
    );
    return row!;
  }

  /** When the queue's next hidden message becomes visible, if it has one. */
  nextVisibleAt(queueId: number, now: number): number | undefined {
    return (
      this.one<{ at: number | null }>(
        'SELECT MIN(visible_at) AS at FROM messages WHERE queue_id = ? AND visible_at > ?',
        queueId,
        now,
      )?.at ?? undefined
    );
  }

  // FIFO deduplication

  duplicateOf(
    queueId: number,
    deduplicationId: string,
    now: number,
  ): { messageId: string; sequenceNumber: number } | undefined {
    return this.one(
      `SELECT message_id AS messageId, sequence_number AS sequenceNumber FROM deduplication
       WHERE queue_id = ? AND deduplication_id = ? AND expires_at > ?`,
      queueId,
      deduplicationId,
      now,
    );
  }

  /** Records a sent message's deduplication id until `expiresAt`, replacing an expired record. */
  rememberDeduplication(
    queueId: number,
    deduplicationId: string,
    messageId: string,
    sequenceNumber: number,
    expiresAt: number,
  ): void {
    this.run(
      `INSERT OR REPLACE INTO deduplication (queue_id, deduplication_id, message_id, sequence_number, expires_at)
       VALUES (?, ?, ?, ?, ?)`,
      queueId,
      deduplicationId,
      messageId,
      sequenceNumber,
      expiresAt,
    );
  }

  forgetExpiredDeduplication(queueId: number, now: number): void {
    this.run('DELETE FROM deduplication WHERE queue_id = ? AND expires_at <= ?', queueId, now);
  }

  // Message move tasks

  insertMoveTask(task: MoveTaskRow): void {
    this.run(
      `INSERT INTO move_tasks (handle, source_arn, destination_arn, max_per_second, status, moved, to_move,
         failure_reason, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      task.handle,
      task.sourceArn,
      task.destinationArn,
      task.maxPerSecond,
      task.status,
      task.moved,
      task.toMove,
      task.failureReason,
      task.startedAt,
    );
  }

  moveTask(handle: string): MoveTaskRow | undefined {
    return this.one(`SELECT ${MOVE_TASK_COLUMNS} FROM move_tasks WHERE handle = ?`, handle);
  }

  /** The most recent move tasks of a source queue, newest first. */
  moveTasks(sourceArn: string, limit: number): MoveTaskRow[] {
    return this.all(
      `SELECT ${MOVE_TASK_COLUMNS} FROM move_tasks WHERE source_arn = ? ORDER BY started_at DESC, rowid DESC LIMIT ?`,
      sourceArn,
      limit,
    );
  }
}
