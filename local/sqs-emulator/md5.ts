import { createHash } from 'node:crypto';
import { isBinary, type MessageAttributes, valueBytes } from './message-attributes.js';

/** MD5 (hex) of the UTF-8 bytes of a message body, as `MD5OfMessageBody` / `MD5OfBody`. */
export function md5OfBody(body: string): string {
  return createHash('md5').update(body, 'utf8').digest('hex');
}

/**
 * MD5 (hex) of message attributes exactly as SQS computes `MD5OfMessageAttributes` (and
 * `MD5OfMessageSystemAttributes`): attributes sorted by name; for each, the name, the data type and the
 * value, each as a 4-byte big-endian length followed by its bytes, with a transport-type byte (1 for
 * String and Number, 2 for Binary) before the value.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html#sqs-attributes-md5-message-digest-calculation
 */
export function md5OfAttributes(attributes: MessageAttributes): string {
  const hash = createHash('md5');
  const field = (bytes: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    hash.update(length).update(bytes);
  };
  for (const name of Object.keys(attributes).sort()) {
    const value = attributes[name]!;
    field(Buffer.from(name, 'utf8'));
    field(Buffer.from(value.DataType, 'utf8'));
    hash.update(Buffer.of(isBinary(value) ? 2 : 1));
    field(valueBytes(value));
  }
  return hash.digest('hex');
}
