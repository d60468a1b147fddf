import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { dlqResourceName, type QueueName, queueResourceName, topology } from '../topology/topology.js';
import type { LocalSettings } from './settings.js';

export function localS3(s: LocalSettings): S3Client {
  return new S3Client({
    endpoint: s.s3Endpoint,
    region: s.AWS_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: s.AWS_ACCESS_KEY_ID, secretAccessKey: s.AWS_SECRET_ACCESS_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export function localSqs(s: LocalSettings): SQSClient {
  return new SQSClient({
    endpoint: s.sqsEndpoint,
    region: s.AWS_REGION,
    credentials: { accessKeyId: s.AWS_ACCESS_KEY_ID, secretAccessKey: s.AWS_SECRET_ACCESS_KEY },
  });
}

/** Creates the topology's buckets if missing (idempotent: an existing bucket is left as it is). */
export async function ensureBuckets(s3: S3Client): Promise<void> {
  for (const bucket of topology.buckets) {
    try {
      await s3.send(new HeadBucketCommand({ Bucket: bucket }));
    } catch {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    }
  }
}

/**
 * Creates every queue with its DLQ and redrive policy (CreateQueue is idempotent for equal attributes)
 * and returns the queue URLs by topology name.
 */
export async function ensureQueues(sqs: SQSClient): Promise<Record<QueueName, string>> {
  const urls = {} as Record<QueueName, string>;
  for (const [name, spec] of Object.entries(topology.queues) as [
    QueueName,
    (typeof topology.queues)[QueueName],
  ][]) {
    const fifo = spec.fifo ? { FifoQueue: 'true' } : {};
    const dlq = await sqs.send(
      new CreateQueueCommand({
        QueueName: dlqResourceName(name),
        Attributes: { ...fifo, MessageRetentionPeriod: '1209600' },
      }),
    );
    const dlqAttrs = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl!, AttributeNames: ['QueueArn'] }),
    );
    const queue = await sqs.send(
      new CreateQueueCommand({
        QueueName: queueResourceName(name),
        Attributes: {
          ...fifo,
          VisibilityTimeout: String(spec.visibilityTimeoutSeconds),
          RedrivePolicy: JSON.stringify({
            deadLetterTargetArn: dlqAttrs.Attributes!.QueueArn,
            maxReceiveCount: String(spec.maxReceiveCount),
          }),
        },
      }),
    );
    urls[name] = queue.QueueUrl!;
  }
  return urls;
}

/** URL of a queue's DLQ, by topology name. */
export async function dlqUrl(sqs: SQSClient, name: QueueName): Promise<string> {
  const res = await sqs.send(new GetQueueUrlCommand({ QueueName: dlqResourceName(name) }));
  return res.QueueUrl!;
}
