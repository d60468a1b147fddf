import { z } from 'zod';
import { type Reprocess, reprocessSchema } from '../contracts/reprocess.js';
import { MessageFormatError } from './errors.js';

/**
 * Parses S3 notifications as AWS and MinIO deliver them, directly (webhook) or wrapped in an SQS body.
 * AWS: `eventSource: "aws:s3"`, `eventName: "ObjectCreated:Put"`. MinIO: `eventSource: "minio:s3"`,
 * `awsRegion: ""`, `eventName: "s3:ObjectCreated:Put"`, plus top-level `EventName` and `Key`.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
 *
 * Our own messages may add a top-level `reprocess` marker (contracts/reprocess.ts): the stage runs the
 * objects again even where it would skip them as done. S3 and MinIO never send it.
 */

const recordSchema = z.object({
  eventSource: z.string().optional(),
  eventName: z.string(),
  eventTime: z.string().optional(),
  awsRegion: z.string().optional(),
  s3: z.object({
    bucket: z.object({ name: z.string().min(1) }),
    object: z.object({
      key: z.string().min(1),
      size: z.number().optional(),
      eTag: z.string().optional(),
      versionId: z.string().optional(),
      sequencer: z.string().optional(),
    }),
  }),
});

const notificationSchema = z.object({
  Records: z.array(recordSchema),
  reprocess: reprocessSchema.optional(),
});
const testEventSchema = z.object({ Event: z.literal('s3:TestEvent') });

export interface S3ObjectEvent {
  bucket: string;
  /** Decoded key, as stored. */
  key: string;
  eTag?: string;
  size?: number;
  eventName: string;
  eventTime?: string;
  /** Set when an operator asked for this object to be processed again (`telemetry-pipeline reprocess`). */
  reprocess?: Reprocess;
}

/**
 * Keys in S3 event records are URL-encoded, with `+` for a space; MinIO also encodes `/` as `%2F`.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
 */
export function decodeEventKey(key: string): string {
  return decodeURIComponent(key.replace(/\+/g, ' '));
}

/** The inverse of {@link decodeEventKey}: how AWS writes a key into an event record. */
export function encodeEventKey(key: string): string {
  return encodeURIComponent(key).replace(/%2F/g, '/').replace(/%20/g, '+');
}

export function isObjectCreated(eventName: string): boolean {
  return eventName.replace(/^s3:/, '').startsWith('ObjectCreated:');
}

/**
 * Object-created events in a notification body. Returns `[]` for `s3:TestEvent` and for other event
 * types (they are acknowledged, not failed); throws {@link MessageFormatError} for anything that is not
 * an S3 notification at all.
 */
export function parseS3Notification(body: unknown, messageId: string): S3ObjectEvent[] {
  let value = body;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch (cause) {
      throw new MessageFormatError(messageId, 'body is not JSON', { cause });
    }
  }
  if (testEventSchema.safeParse(value).success) return [];
  const parsed = notificationSchema.safeParse(value);
  if (!parsed.success) {
    throw new MessageFormatError(messageId, `not an S3 notification: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data.Records.filter((r) => isObjectCreated(r.eventName)).map((r) => {
    const { object } = r.s3;
    let key: string;
    try {
      key = decodeEventKey(object.key);
    } catch (cause) {
      throw new MessageFormatError(messageId, `key is not valid URL encoding: ${object.key}`, { cause });
    }
    return {
      bucket: r.s3.bucket.name,
      key,
      eTag: object.eTag?.replace(/"/g, ''),
      size: object.size,
      eventName: r.eventName.replace(/^s3:/, ''),
      eventTime: r.eventTime,
      ...(parsed.data.reprocess ? { reprocess: parsed.data.reprocess } : {}),
    };
  });
}

/**
 * The message AWS S3 puts on an SQS queue for one created object; with `reprocess`, the same message
 * carrying a reprocess run's marker.
 */
export function buildS3Notification(input: {
  bucket: string;
  key: string;
  size: number;
  eTag: string;
  eventName: string;
  eventTime?: Date;
  region?: string;
  sequencer?: string;
  reprocess?: Reprocess;
}): { Records: z.input<typeof recordSchema>[]; reprocess?: Reprocess } {
  return {
    ...(input.reprocess ? { reprocess: input.reprocess } : {}),
    Records: [
      {
        eventVersion: '2.1',
        eventSource: 'aws:s3',
        awsRegion: input.region ?? 'us-east-1',
        eventTime: (input.eventTime ?? new Date()).toISOString(),
        eventName: input.eventName.replace(/^s3:/, ''),
        userIdentity: { principalId: 'local' },
        requestParameters: { sourceIPAddress: '127.0.0.1' },
        responseElements: { 'x-amz-request-id': 'local', 'x-amz-id-2': 'local' },
        s3: {
          s3SchemaVersion: '1.0',
          configurationId: 'telemetry-pipeline',
          bucket: {
            name: input.bucket,
            ownerIdentity: { principalId: 'local' },
            arn: `arn:aws:s3:::${input.bucket}`,
          },
          object: {
            key: encodeEventKey(input.key),
            size: input.size,
            eTag: input.eTag.replace(/"/g, ''),
            sequencer: input.sequencer ?? Date.now().toString(16).toUpperCase().padStart(16, '0'),
          },
        },
      } as z.input<typeof recordSchema>,
    ],
  };
}
