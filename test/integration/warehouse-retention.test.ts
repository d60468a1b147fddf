import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestKeyOf } from '../../functions/contracts/keys.js';
import { joinLines, jsonlReadings } from '../../local/demo-data.js';
import type { Target } from '../../local/target.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The running stack with `WAREHOUSE_RETENTION_DAYS` set, end to end: a late backfill of old data goes
 * through ETL and enrich into the lake, and the writer retires it instead of loading it; the reconciler
 * counts it as accounted for; `reprocess --wait` sees it through.
 */
const PORTS = { S3_PORT: '36000', SQS_PORT: '36324', RUNTIME_PORT: '36300' };
const OLD = 'demo/2024/03/04/backfill.jsonl';
const RECENT = `demo/${new Date().toISOString().slice(0, 10).replaceAll('-', '/')}/today.jsonl`;
let stack: TestStack;
let target: Target;

beforeAll(async () => {
  stack = await startTestStack({
    ...PORTS,
    WAREHOUSE_RETENTION_DAYS: '365',
    RECONCILE_GRACE_SECONDS: '0',
    RECONCILE_INTERVAL_SECONDS: '3600',
  });
  const { resolveTarget } = await import('../../local/target.js');
  target = await resolveTarget();
  await stack.put(
    OLD,
    joinLines(jsonlReadings({ seed: 41, lines: 40, start: new Date('2024-03-04T00:00:00Z') })),
  );
  await stack.put(
    RECENT,
    joinLines(jsonlReadings({ seed: 42, lines: 30, start: new Date(Date.now() - 7_200_000) })),
  );
  await stack.waitForWarehouse([RECENT], 60_000);
  await waitFor(
    async () => ((await ledgerOf(OLD)).some((r) => r.kind === 'retired') ? true : undefined),
    60_000,
    'the backfill retired',
  );
}, 120_000);

afterAll(async () => {
  target?.s3.destroy();
  target?.sqs.destroy();
  delete process.env.WAREHOUSE_RETENTION_DAYS;
  await stack?.stop();
});

const ledgerOf = async (key: string) =>
  (await stack.queryWarehouse(
    `SELECT lake_key, etag, kind FROM ledger WHERE source_key = '${key}' ORDER BY kind`,
  )) as { lake_key: string; etag: string; kind: string }[];

describe('a late backfill of data older than the warehouse keeps', () => {
  it('is in the lake, not in the warehouse: its manifest version retired, nothing missing for the reconciler', async () => {
    const [manifest] = await stack.list('lake', manifestKeyOf('raw', OLD));
    expect(await ledgerOf(OLD)).toEqual([{ lake_key: manifest!.key, etag: manifest!.eTag, kind: 'retired' }]);
    expect(await stack.list('lake', 'enriched/readings/factory=demo/month=2024-03/')).toHaveLength(1);
    const rows = await stack.queryWarehouse(
      `SELECT (SELECT count(*) FROM readings WHERE source_key = '${OLD}') AS old,
              (SELECT count(*) FROM readings WHERE source_key = '${RECENT}') AS recent`,
    );
    expect(rows).toEqual([{ old: '0', recent: '30' }]);
    // The reconciler: nothing of it missing from the warehouse, nothing sent again.
    await stack.runtime.reconciler.runOnce();
    const status = stack.runtime.reconciler.status;
    if (status.state !== 'ok') throw new Error(`reconciler: ${JSON.stringify(status)}`);
    expect(status.report.missing).toEqual({});
  });

  it('reprocess --wait sees it through, from the ETL as from the warehouse step, and it stays retired', async () => {
    const { reprocess } = await import('../../local/reprocess.js');
    for (const step of ['warehouse', 'etl']) {
      const report = await reprocess(
        target,
        {
          factory: 'demo',
          key: 'backfill.jsonl',
          step,
          wait: true,
          timeout: 60,
          pollSeconds: 0.5,
          bars: false,
        },
        () => undefined,
      );
      expect(report.objects, step).toEqual([OLD]);
      expect(report.wait?.pending, step).toEqual([]);
      const [manifest] = await stack.list('lake', manifestKeyOf('raw', OLD));
      expect(await ledgerOf(OLD), step).toEqual([
        { lake_key: manifest!.key, etag: manifest!.eTag, kind: 'retired' },
      ]);
    }
  });
});
