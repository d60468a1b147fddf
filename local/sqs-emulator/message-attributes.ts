import { z } from 'zod';
import { invalidParameter, sqsError } from './errors.js';
import { invalidCharacter } from './validation.js';

/**
 * A message attribute as the JSON protocol carries it (`BinaryValue` in base64). `StringListValues` and
 * `BinaryListValues` are "reserved for future use" by SQS, so they are not modelled.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html#sqs-message-attributes
 */
export const messageAttributeValueSchema = z.object({
  DataType: z.string(),
  StringValue: z.string().optional(),
  BinaryValue: z.string().optional(),
});
export type MessageAttributeValue = z.infer<typeof messageAttributeValueSchema>;
export type MessageAttributes = Record<string, MessageAttributeValue>;

const MAX_ATTRIBUTES = 10;
const NAME = /^[A-Za-z0-9_.-]{1,256}$/;
const DATA_TYPE = /^(String|Number|Binary)(\.[^\s]+)?$/;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Whether the attribute travels as bytes (transport type 2 in the MD5 digest) rather than as text. */
export function isBinary(value: MessageAttributeValue): boolean {
  return value.DataType.startsWith('Binary');
}

/** The attribute's value as bytes: UTF-8 text, or the decoded base64 of a binary one. */
export function valueBytes(value: MessageAttributeValue): Buffer {
  return isBinary(value)
    ? Buffer.from(value.BinaryValue ?? '', 'base64')
    : Buffer.from(value.StringValue ?? '', 'utf8');
}

/** The attributes' size (names, types and values), which counts towards a message's size limit. */
export function attributesSize(attributes: MessageAttributes): number {
  return Object.entries(attributes).reduce(
    (size, [name, value]) =>
      size + Buffer.byteLength(name) + Buffer.byteLength(value.DataType) + valueBytes(value).length,
    0,
  );
}

/**
 * Checks message attributes against SQS's rules: at most 10; names of letters, digits, `_`, `-` and `.`,
 * not starting with `AWS.` or `Amazon.`, no leading, trailing or doubled dot; types String, Number or
 * Binary with an optional custom label; a non-empty value of the type.
 */
export function validateMessageAttributes(attributes: MessageAttributes): void {
  const names = Object.keys(attributes);
  if (names.length > MAX_ATTRIBUTES) {
    throw invalidParameter(
      'MessageAttributes',
      names.length,
      `Number of message attributes [${names.length}] exceeds the allowed maximum [${MAX_ATTRIBUTES}].`,
    );
  }
  for (const [name, value] of Object.entries(attributes)) {
    if (
      !NAME.test(name) ||
      /^(aws|amazon)\./i.test(name) ||
      name.startsWith('.') ||
      name.endsWith('.') ||
      name.includes('..')
    ) {
      throw invalidParameter('MessageAttribute.Name', name, 'Invalid message attribute name.');
    }
    if (!DATA_TYPE.test(value.DataType) || value.DataType.length > 256) {
      throw invalidParameter(
        'MessageAttribute.DataType',
        value.DataType,
        `Message (user) attribute '${name}' has an invalid data type.`,
      );
    }
    const present = isBinary(value) ? value.BinaryValue : value.StringValue;
    if (present === undefined || present === '') {
      const kind = isBinary(value) ? 'Binary' : 'String';
      throw invalidParameter(
        `MessageAttribute.${name}`,
        value.DataType,
        `Message (user) attribute '${name}' must contain a non-empty value of type '${kind}'.`,
      );
    }
    if (value.DataType.startsWith('Number') && !NUMBER.test(value.StringValue ?? '')) {
      throw invalidParameter(
        `MessageAttribute.${name}`,
        value.StringValue,
        `Can't cast the value of message (user) attribute '${name}' to a number.`,
      );
    }
    if (!isBinary(value) && invalidCharacter(value.StringValue ?? '')) {
      throw sqsError(
        'InvalidMessageContents',
        `Message (user) attribute '${name}' contains characters outside the allowed set.`,
      );
    }
  }
}

/**
 * The attributes a receive asked for: `All` or `.*` for all of them, `prefix.*` for those whose name
 * starts with `prefix.`, otherwise exact names.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html#SQS-ReceiveMessage-request-MessageAttributeNames
 */
export function selectMessageAttributes(
  attributes: MessageAttributes,
  names: readonly string[],
): MessageAttributes {
  if (names.includes('All') || names.includes('.*')) return attributes;
  const wanted = (name: string) =>
    names.some((n) => (n.endsWith('.*') ? name.startsWith(n.slice(0, -1)) : name === n));
  return Object.fromEntries(Object.entries(attributes).filter(([name]) => wanted(name)));
}
