import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { retentionRules, topology } from '../../topology/topology.js';
import { type ScratchS3, startScratchS3 } from '../helpers/scratch-s3.js';

/**
 * The local runtime's retention sweep against the embedded S3: what the buckets' S3 lifecycle rules do
 * deployed (`test/unit/stacks.test.ts` checks those rules are the same topology rules).
 */
let s3: ScratchS3;
beforeAll(async () => {
  s3 = await startScratchS3('retention', topology.buckets);
});
afterAll(async () => {
  await s3?.stop();
});

async function keys(bucket: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    out.push(...(page.Contents ?? []).map((o) => o.Key!));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out.sort();
}

describe('retention, locally', () => {
  it('deletes what a rule has expired — under its prefix only, past its days only — through any number of pages', async () => {
    const { sweepRetention } = await import('../../local/retention.js');
    const put = (Bucket: string, Key: string) =>
      s3.client.send(new PutObjectCommand({ Bucket, Key, Body: 'x' }));
    // 1,200 raw objects: more than a listing page.
    for (let i = 0; i < 1200; i += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, j) =>
          put('raw', `plant/2024/01/01/f-${String(i + j).padStart(4, '0')}.log`),
        ),
      );
    }
    const lake = [
      'quarantine/files/factory=plant/a.json',
      'failures/etl/m1.json',
      'manifests/factory=plant/abc.json',
      'enriched/readings/factory=plant/month=2024-01/x.parquet',
      'reference/devices.yaml',
    ];
    for (const key of lake) await put('lake', key);
    const rules = retentionRules();
    const day = 86_400_000;
    const at = (days: number) => new Date(Date.now() + days * day);

    // Tomorrow: nothing has expired.
    expect((await sweepRetention(s3.client, rules, (b) => b, at(1))).deleted).toBe(0);
    // In 20 days: the failure records (14 days) only.
    expect((await sweepRetention(s3.client, rules, (b) => b, at(20))).byRule).toMatchObject({
      'lake/failures/': 1,
      'raw/': 0,
    });
    // In 31 days: every raw object (30 days), the rest of the lake still there.
    const month = await sweepRetention(s3.client, rules, (b) => b, at(31));
    expect(month.byRule['raw/']).toBe(1200);
    expect(await keys('raw')).toEqual([]);
    expect(await keys('lake')).toEqual(lake.filter((k) => !k.startsWith('failures/')).sort());
    // In three years: quarantine (90 days) and the lake's data (730 days) too; manifests and reference
    // data have no rule and stay.
    await sweepRetention(s3.client, rules, (b) => b, at(3 * 365));
    expect(await keys('lake')).toEqual(['manifests/factory=plant/abc.json', 'reference/devices.yaml']);
  });

  it('RETENTION_DAYS changes a stage’s rules: a rule of 0 days keeps for good', async () => {
    const { sweepRetention } = await import('../../local/retention.js');
    await s3.client.send(new PutObjectCommand({ Bucket: 'raw', Key: 'keep/2024/01/01/a.log', Body: 'x' }));
    const rules = retentionRules('raw/=0');
    expect(rules.find((r) => r.bucket === 'raw')).toBeUndefined();
    await sweepRetention(s3.client, rules, (b) => b, new Date(Date.now() + 365 * 86_400_000));
    expect(await keys('raw')).toEqual(['keep/2024/01/01/a.log']);
    expect(retentionRules('raw/=7').find((r) => r.bucket === 'raw')).toEqual({
      bucket: 'raw',
      prefix: '',
      days: 7,
    });
    expect(() => retentionRules('raw=7')).toThrow('RETENTION_DAYS: "raw=7" is not <bucket>/<prefix>=<days>');
  });
});
