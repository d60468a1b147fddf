import { type BucketName, type QueueName, routesFor, topology } from '../../topology/topology.js';
import type { Reprocess } from '../contracts/reprocess.js';
import { buildS3Notification } from './s3-event.js';

/** An object to announce, as S3 would: `bucket` is the topology's name, `physicalBucket` the real one. */
export interface CreatedObjectNotice {
  bucket: BucketName;
  physicalBucket?: string;
  key: string;
  size: number;
  eTag: string;
  eventName: string;
  region: string;
  /** A reprocess run's marker (`telemetry-pipeline reprocess`): the stage runs the object again. */
  reprocess?: Reprocess;
}

/**
 * The messages S3 would deliver for a created object — an S3 event JSON body with the key URL-encoded —
 * one for every queue whose topology route matches its bucket, event type and prefix/suffix. Used
 * wherever S3's own notification is emulated or replaced: the local runtime's router and the
 * reconciler, which re-emits the event a stage missed.
 */
export function objectCreatedMessages(object: CreatedObjectNotice): { queue: QueueName; body: string }[] {
  const routes = routesFor(object.bucket, object.key, object.eventName);
  if (routes.length === 0) return [];
  const body = JSON.stringify(
    buildS3Notification({
      bucket: object.physicalBucket ?? object.bucket,
      key: object.key,
      size: object.size,
      eTag: object.eTag,
      eventName: object.eventName,
      region: object.region,
      reprocess: object.reprocess,
    }),
  );
  return routes.map((route) => {
    // S3 cannot notify FIFO queues; the topology never declares such a route.
    if (topology.queues[route.queue].fifo) {
      throw new Error(`notification to FIFO queue ${route.queue} is not possible in S3`);
    }
    return { queue: route.queue, body };
  });
}
