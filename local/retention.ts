import { DeleteObjectsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { logger } from '../functions/core/logger.js';
import type { BucketName, RetentionRule } from '../topology/topology.js';

/**
 * The topology's retention, locally: what S3 lifecycle rules do deployed — objects under a rule's prefix
 * deleted once they are older than its days — done by a sweep the runtime runs at start-up and every
 * hour. The same rules (`retentionRules`, with `RETENTION_DAYS`) as the stacks give S3.
 */
export async function sweepRetention(
  s3: S3Client,
  rules: readonly RetentionRule[],
  bucketName: (b: BucketName) => string,
  now = new Date(),
): Promise<{ deleted: number; byRule: Record<string, number> }> {
  const byRule: Record<string, number> = {};
  let deleted = 0;
  for (const rule of rules) {
    const bucket = bucketName(rule.bucket);
    const cutoff = now.getTime() - rule.days * 86_400_000;
    let token: string | undefined;
    let n = 0;
    do {
      const page = await s3.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: rule.prefix, ContinuationToken: token }),
      );
      const expired = (page.Contents ?? []).filter(
        (o) => o.Key && o.LastModified && o.LastModified.getTime() < cutoff,
      );
      if (expired.length > 0) {
        const res = await s3.send(
          new DeleteObjectsCommand({
            Bucket: bucket,
            Delete: { Objects: expired.map((o) => ({ Key: o.Key! })), Quiet: true },
          }),
        );
        for (const e of res.Errors ?? []) {
          logger.warn({ bucket, key: e.Key, error: e.Message }, 'expired object not deleted');
        }
        n += expired.length - (res.Errors?.length ?? 0);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    byRule[`${rule.bucket}/${rule.prefix}`] = n;
    deleted += n;
  }
  if (deleted > 0) logger.info({ deleted, byRule }, 'expired objects deleted (retention)');
  return { deleted, byRule };
}

/** Every hour, and once now: `sweep`, its failures logged (the next sweep tries again). */
export function scheduleRetention(sweep: () => Promise<unknown>, everyMs = 3_600_000): () => void {
  const run = () => {
    sweep().catch((err) => logger.error({ err, error_code: 'retention-failed' }, 'retention sweep failed'));
  };
  run();
  const timer = setInterval(run, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
