import { z } from 'zod';
import { invalidParameter, missingParameter, queueDoesNotExist } from './errors.js';
import type { LongPolls } from './long-polls.js';
import type { Output } from './protocol.js';
import type { QueueNames } from './queue-names.js';
import type { QueueRow, QueueStore } from './queue-store.js';

/** What an action works with. */
export interface ActionContext {
  readonly store: QueueStore;
  readonly longPolls: LongPolls;
  readonly names: QueueNames;
  /** Aborted when the client goes away or the emulator stops: a long poll then ends. */
  readonly signal: AbortSignal;
}

/** An SQS action: JSON-protocol-shaped input in, output out (`undefined` when SQS returns nothing). */
export type Action = (
  input: unknown,
  context: ActionContext,
) => Output | undefined | Promise<Output | undefined>;

/**
 * Parses an action's input, answering as SQS does: `MissingParameter` for an absent required member,
 * `InvalidParameterValue` for a wrong one.
 */
export function parseInput<T>(schema: z.ZodType<T>, input: unknown): T {
  const parsed = schema.safeParse(input, { reportInput: true });
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const name = issue.path.join('.');
  if (issue.code === 'invalid_type' && issue.input === undefined) throw missingParameter(name);
  throw invalidParameter(name, issue.input, issue.message);
}

/** An integer parameter with SQS's range message. */
export function integerIn(min: number, max: number) {
  const reason = `Must be between ${min} and ${max}, if provided.`;
  return z.number().int(reason).min(min, reason).max(max, reason);
}

/** The queue a request's `QueueUrl` names; `QueueDoesNotExist` otherwise. */
export function queueByUrl(context: ActionContext, queueUrl: string): QueueRow {
  const queue = context.store.queueByName(context.names.nameFromUrl(queueUrl));
  if (!queue) throw queueDoesNotExist();
  return queue;
}

/** The queue an ARN names, if it is one of this emulator's. */
export function queueByArn(context: ActionContext, arn: string): QueueRow | undefined {
  const name = context.names.nameFromArn(arn);
  return name === undefined ? undefined : context.store.queueByName(name);
}
