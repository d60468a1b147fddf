import { z } from 'zod';
import { invalidParameter, type SqsError, sqsError } from './errors.js';

/**
 * The attributes a queue can be created or configured with, their ranges and defaults.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html
 */
const INTEGER_ATTRIBUTES = {
  DelaySeconds: { min: 0, max: 900, default: 0 },
  MaximumMessageSize: { min: 1024, max: 262_144, default: 262_144 },
  MessageRetentionPeriod: { min: 60, max: 1_209_600, default: 345_600 },
  ReceiveMessageWaitTimeSeconds: { min: 0, max: 20, default: 0 },
  VisibilityTimeout: { min: 0, max: 43_200, default: 30 },
} as const;
type IntegerAttribute = keyof typeof INTEGER_ATTRIBUTES;

/** Attributes computed by the service, readable with GetQueueAttributes but not settable. */
const COMPUTED_ATTRIBUTES = [
  'ApproximateNumberOfMessages',
  'ApproximateNumberOfMessagesNotVisible',
  'ApproximateNumberOfMessagesDelayed',
  'CreatedTimestamp',
  'LastModifiedTimestamp',
  'QueueArn',
] as const;

/** Every attribute GetQueueAttributes knows (FIFO ones only exist on FIFO queues). */
export const READABLE_ATTRIBUTES: ReadonlySet<string> = new Set([
  ...Object.keys(INTEGER_ATTRIBUTES),
  'RedrivePolicy',
  'RedriveAllowPolicy',
  'FifoQueue',
  'ContentBasedDeduplication',
  ...COMPUTED_ATTRIBUTES,
]);

/** A stored queue's attributes, in the canonical string form GetQueueAttributes returns. */
export type QueueAttributes = Record<string, string>;

export interface RedrivePolicy {
  deadLetterTargetArn: string;
  maxReceiveCount: number;
}

/** A queue's attributes, typed. */
export interface QueueSettings {
  fifo: boolean;
  contentBasedDeduplication: boolean;
  delaySeconds: number;
  maximumMessageSize: number;
  messageRetentionPeriod: number;
  receiveMessageWaitTimeSeconds: number;
  visibilityTimeout: number;
  redrivePolicy?: RedrivePolicy;
  redriveAllowPolicy?: RedriveAllowPolicy;
}

const redrivePolicySchema = z.object({
  deadLetterTargetArn: z.string().min(1),
  // SQS accepts the count as a number or a numeric string, and returns a number.
  maxReceiveCount: z.coerce.number().int().min(1).max(1000),
});

const redriveAllowPolicySchema = z
  .object({
    redrivePermission: z.enum(['allowAll', 'denyAll', 'byQueue']),
    sourceQueueArns: z.array(z.string()).min(1).max(10).optional(),
  })
  .refine((p) => (p.redrivePermission === 'byQueue') === (p.sourceQueueArns !== undefined), {
    message: 'sourceQueueArns is required with byQueue, and only with byQueue',
  });
export type RedriveAllowPolicy = z.infer<typeof redriveAllowPolicySchema>;

function parseJsonAttribute<T>(name: string, value: string, schema: z.ZodType<T>): T {
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    throw invalidParameter(name, value, `${name} must be valid JSON.`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw invalidParameter(name, value, parsed.error.issues[0]?.message ?? 'invalid');
  return parsed.data;
}

function isIntegerAttribute(name: string): name is IntegerAttribute {
  return Object.hasOwn(INTEGER_ATTRIBUTES, name);
}

function invalidValue(name: string): SqsError {
  return sqsError('InvalidAttributeValue', `Invalid value for the parameter ${name}.`);
}

function canonicalBoolean(name: string, value: string): string {
  const lower = value.toLowerCase();
  if (lower !== 'true' && lower !== 'false') throw invalidValue(name);
  return lower;
}

/** Whether CreateQueue's attributes ask for a FIFO queue (`FifoQueue`, set at creation only). */
export function requestsFifo(attributes: Record<string, string>): boolean {
  const value = attributes.FifoQueue;
  return value !== undefined && canonicalBoolean('FifoQueue', value) === 'true';
}

/** The attributes of a new queue before any is given. */
export function defaultAttributes(fifo: boolean): QueueAttributes {
  const defaults: QueueAttributes = Object.fromEntries(
    Object.entries(INTEGER_ATTRIBUTES).map(([name, spec]) => [name, String(spec.default)]),
  );
  return fifo ? { ...defaults, FifoQueue: 'true', ContentBasedDeduplication: 'false' } : defaults;
}

/**
 * Validates attributes given to CreateQueue or SetQueueAttributes and returns them in canonical form
 * (an empty `RedrivePolicy` / `RedriveAllowPolicy` stays empty: it removes the policy). `FifoQueue` is
 * left to {@link requestsFifo}: it can only be given at creation.
 */
export function canonicalAttributes(
  given: Record<string, string>,
  fifo: boolean,
  creating: boolean,
): QueueAttributes {
  const out: QueueAttributes = {};
  for (const [name, value] of Object.entries(given)) {
    if (isIntegerAttribute(name)) {
      const { min, max } = INTEGER_ATTRIBUTES[name];
      const n = Number(value);
      if (!/^\d+$/.test(value.trim()) || n < min || n > max) throw invalidValue(name);
      out[name] = String(n);
    } else if (name === 'RedrivePolicy') {
      out[name] = value === '' ? '' : JSON.stringify(parseJsonAttribute(name, value, redrivePolicySchema));
    } else if (name === 'RedriveAllowPolicy') {
      out[name] =
        value === '' ? '' : JSON.stringify(parseJsonAttribute(name, value, redriveAllowPolicySchema));
    } else if (name === 'ContentBasedDeduplication' && fifo) {
      out[name] = canonicalBoolean(name, value);
    } else if (name !== 'FifoQueue' || !creating) {
      throw sqsError('InvalidAttributeName', `Unknown Attribute ${name}.`);
    }
  }
  return out;
}

/** `current` with `changes` applied; an empty value removes the attribute. */
export function applyAttributes(current: QueueAttributes, changes: QueueAttributes): QueueAttributes {
  const next = { ...current, ...changes };
  for (const [name, value] of Object.entries(changes)) if (value === '') delete next[name];
  return next;
}

/** The first attribute of `changes` whose value differs from `current`, if any. */
export function differingAttribute(current: QueueAttributes, changes: QueueAttributes): string | undefined {
  return Object.keys(changes).find((name) => (current[name] ?? '') !== changes[name]);
}

/** A queue's stored attributes, typed. */
export function queueSettings(attributes: QueueAttributes): QueueSettings {
  const int = (name: IntegerAttribute) => Number(attributes[name] ?? INTEGER_ATTRIBUTES[name].default);
  const settings: QueueSettings = {
    fifo: attributes.FifoQueue === 'true',
    contentBasedDeduplication: attributes.ContentBasedDeduplication === 'true',
    delaySeconds: int('DelaySeconds'),
    maximumMessageSize: int('MaximumMessageSize'),
    messageRetentionPeriod: int('MessageRetentionPeriod'),
    receiveMessageWaitTimeSeconds: int('ReceiveMessageWaitTimeSeconds'),
    visibilityTimeout: int('VisibilityTimeout'),
  };
  if (attributes.RedrivePolicy) {
    settings.redrivePolicy = redrivePolicySchema.parse(JSON.parse(attributes.RedrivePolicy));
  }
  if (attributes.RedriveAllowPolicy) {
    settings.redriveAllowPolicy = redriveAllowPolicySchema.parse(JSON.parse(attributes.RedriveAllowPolicy));
  }
  return settings;
}
