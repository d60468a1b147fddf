import { invalidParameter, missingParameter, sqsError } from './errors.js';

/**
 * Characters SQS refuses in message bodies and attribute values: anything outside #x9 | #xA | #xD |
 * #x20–#xD7FF | #xE000–#xFFFD | #x10000–#x10FFFF (with the `u` flag a lone surrogate is a code point
 * of its own, so it is refused too).
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html#SQS-SendMessage-request-MessageBody
 */
const INVALID_CHARACTER = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

/** Whether `text` has a character SQS does not accept. */
export function invalidCharacter(text: string): boolean {
  return INVALID_CHARACTER.test(text);
}

/**
 * Checks a message body: present, of allowed characters, and — with its attributes — no larger than the
 * queue's `MaximumMessageSize`.
 */
export function validateMessageBody(body: string, attributesSize: number, maximumSize: number): void {
  if (body === '') throw missingParameter('MessageBody');
  if (invalidCharacter(body)) {
    throw sqsError(
      'InvalidMessageContents',
      'Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF',
    );
  }
  if (Buffer.byteLength(body) + attributesSize > maximumSize) {
    throw sqsError(
      'InvalidParameterValue',
      `One or more parameters are invalid. Reason: Message must be shorter than ${maximumSize} bytes.`,
    );
  }
}

/**
 * Queue names: 1–80 characters of letters, digits, `-` and `_`; a FIFO queue's name ends in `.fifo`
 * (counted in the 80), and only a FIFO queue's may.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html#SQS-CreateQueue-request-QueueName
 */
export function validateQueueName(name: string, fifo: boolean): void {
  const base = fifo ? name.replace(/\.fifo$/, '') : name;
  const ok = name.length <= 80 && /^[A-Za-z0-9_-]+$/.test(base) && (!fifo || name.endsWith('.fifo'));
  if (!ok) {
    throw invalidParameter(
      'QueueName',
      name,
      fifo
        ? 'The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length.'
        : 'Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length.',
    );
  }
}

const MAX_BATCH = 10;
const BATCH_ENTRY_ID = /^[A-Za-z0-9_-]{1,80}$/;

/** The checks common to every batch action: 1–10 entries with distinct, well-formed ids. */
export function validateBatch(entries: readonly { Id: string }[]): void {
  if (entries.length === 0) {
    throw sqsError('EmptyBatchRequest', 'There should be at least one entry in the request.');
  }
  if (entries.length > MAX_BATCH) {
    throw sqsError(
      'TooManyEntriesInBatchRequest',
      `Maximum number of entries per request are ${MAX_BATCH}. You have sent ${entries.length}.`,
    );
  }
  const seen = new Set<string>();
  for (const { Id } of entries) {
    if (!BATCH_ENTRY_ID.test(Id)) {
      throw sqsError(
        'InvalidBatchEntryId',
        'A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.',
      );
    }
    if (seen.has(Id)) throw sqsError('BatchEntryIdsNotDistinct', `Id ${Id} repeated.`);
    seen.add(Id);
  }
}
