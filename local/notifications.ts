import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { logger } from '../functions/core/logger.js';
import { objectCreatedMessages } from '../functions/core/notify.js';
import { type BucketName, type QueueName, routesFor, topology } from '../topology/topology.js';
import type { CreatedObject } from './emulators.js';

/**
 * Bucket notifications, done the way S3 does them: for each route of the topology whose bucket, event
 * type and prefix/suffix match, the queue receives the exact message AWS would deliver (an S3 event
 * JSON body with the key URL-encoded). Used for the embedded S3, MinIO webhooks and polling mode alike.
 */
export class NotificationRouter {
  constructor(
    private readonly sqs: SQSClient,
    private readonly s3: S3Client,
    private readonly queueUrls: Record<QueueName, string>,
    private readonly region: string,
  ) {}

  /** Sends the notification to every matching queue; returns the queues it went to. */
  async route(object: CreatedObject): Promise<QueueName[]> {
    if (!isBucketName(object.bucket) || routesFor(object.bucket, object.key, object.eventName).length === 0)
      return [];
    let { eTag, size } = object;
    if (eTag === undefined || size === undefined) {
      // Copies carry no ETag in some stores' events; S3 always sends one.
      const head = await this.s3.send(new HeadObjectCommand({ Bucket: object.bucket, Key: object.key }));
      eTag ??= head.ETag?.replace(/"/g, '') ?? '';
      size ??= head.ContentLength ?? 0;
    }
    const messages = objectCreatedMessages({
      bucket: object.bucket,
      key: object.key,
      size,
      eTag,
      eventName: object.eventName,
      region: this.region,
    });
    for (const { queue, body } of messages) {
      await this.sqs.send(new SendMessageCommand({ QueueUrl: this.queueUrls[queue], MessageBody: body }));
    }
    const sent = messages.map((m) => m.queue);
    logger.debug({ bucket: object.bucket, key: object.key, queues: sent }, 'notification routed');
    return sent;
  }
}

function isBucketName(name: string): name is BucketName {
  return (topology.buckets as readonly string[]).includes(name);
}
