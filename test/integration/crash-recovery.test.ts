import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { joinLines, jsonlReadings } from '../../local/demo-data.js';
import { StackProcess } from '../helpers/stack-process.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The promise "every uploaded file ends in the warehouse exactly once", tested the hard way: the whole
 * embedded stack (its S3, its SQS, every function) is killed with SIGKILL at random moments while files
 * move through every stage, and started again on the same data folder.
 */
const PORTS = { s3: 19100, sqs: 19424, runtime: 13100 };
const FILES = 150;
const KILLS = 5;

let stack: StackProcess;

/** Runs SQL on the stack's warehouse from this process (a reader's own copies). */
async function queryWarehouse(sql: string): Promise<Record<string, unknown>[]> {
  const { WarehouseReader } = await import('../../functions/warehouse/query.js');
  const dir = await mkdtemp(join(stack.data, 'reader-'));
  const reader = new WarehouseReader('warehouse', dir);
  try {
    return (await reader.query(sql))?.rows ?? [];
  } finally {
    await reader.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Uploads until the store acknowledges it — what a client does when the server went away mid-request. */
async function putUntilAcknowledged(key: string, body: string): Promise<void> {
  for (;;) {
    try {
      await stack.s3.send(new PutObjectCommand({ Bucket: 'raw', Key: key, Body: body }));
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

beforeAll(async () => {
  stack = await StackProcess.create(PORTS, {
    // Recover quickly: a pass every 3 s, for objects older than 5 s.
    RECONCILE_INTERVAL_SECONDS: '3',
    RECONCILE_GRACE_SECONDS: '5',
    RECONCILE_MAX_DEFER_SECONDS: '60',
    LOCAL_RETRY_DELAY_SECONDS: '1',
    // The delta folds into a new level-1 file every few batches, so kills land in those folds too.
    WAREHOUSE_DELTA_MAX_BYTES: String(256 * 1024),
  });
  Object.assign(process.env, {
    S3_ENDPOINT: stack.s3Endpoint,
    AWS_ACCESS_KEY_ID: 'minioadmin',
    AWS_SECRET_ACCESS_KEY: 'minioadmin',
    AWS_REGION: 'us-east-1',
  });
  await stack.start();
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('kill -9 of the whole embedded stack', () => {
  it(`${KILLS} kills at random moments while ${FILES} files move through every stage: each file in the warehouse exactly once`, async () => {
    const start = new Date('2026-11-20T00:00:00Z');
    const files = Array.from({ length: FILES }, (_, i) => ({
      key: `crash/2026/11/20/sensor-${String(i).padStart(3, '0')}.jsonl`,
      lines: 20 + ((i * 7) % 41),
      seed: 1000 + i,
    }));
    const uploads = (async () => {
      for (const f of files) {
        await putUntilAcknowledged(f.key, joinLines(jsonlReadings({ seed: f.seed, lines: f.lines, start })));
      }
    })();

    const killedAt: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      // Random moments: during uploads, ETL, enrichment and warehouse batches alike.
      await new Promise((r) => setTimeout(r, 1500 + Math.random() * 3500));
      killedAt.push(Date.now());
      await stack.kill9();
      await stack.start();
    }
    await uploads;

    // Every file complete in the warehouse, once: rows per file = lines written, no lake object twice.
    await waitFor(
      async () => {
        const rows = await queryWarehouse(
          "SELECT count(*) AS n FROM pipeline_files WHERE complete AND source_key LIKE 'crash/%'",
        ).catch(() => []);
        return Number(rows[0]?.n ?? 0) === FILES;
      },
      240_000,
      `${FILES} files complete in the warehouse`,
    );
    const perFile = await queryWarehouse(
      "SELECT source_key, count(*) AS n, count(DISTINCT source_line) AS lines FROM readings WHERE source_key LIKE 'crash/%' GROUP BY ALL ORDER BY ALL",
    );
    expect(perFile).toEqual(
      files.map((f) => ({ source_key: f.key, n: String(f.lines), lines: String(f.lines) })),
    );
    expect(
      await queryWarehouse('SELECT lake_key, count(*) AS n FROM ledger GROUP BY ALL HAVING count(*) > 1'),
    ).toEqual([]);
    expect(
      await queryWarehouse(
        "SELECT source_key, count(*) AS n FROM manifests WHERE source_key LIKE 'crash/%' GROUP BY ALL HAVING count(*) > 1",
      ),
    ).toEqual([]);
    // The delta was folded into level-1 files along the way (kills may have hit those folds).
    const [meta] = await queryWarehouse('SELECT l1_key FROM warehouse_meta');
    expect(meta?.l1_key).toMatch(/^l1\//);
    expect((await stack.health()).status).toBe('ok');
  }, 360_000);

  it('a restart with 1,100 raw objects, every queue wiped: the reconciler pages through all of them and each file is processed', async () => {
    const keys = Array.from(
      { length: 1100 },
      (_, i) => `wipe/2026/11/21/f-${String(i).padStart(4, '0')}.jsonl`,
    );
    const start = new Date('2026-11-21T00:00:00Z');
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(
        keys
          .slice(i, i + 50)
          .map((key, j) =>
            putUntilAcknowledged(key, joinLines(jsonlReadings({ seed: i + j, lines: 3, start }))),
          ),
      );
    }
    await stack.kill9();
    // Every message gone, as if the queues had been purged or lost: only the objects remain.
    await rm(join(stack.data, 'sqs'), { recursive: true, force: true });
    await stack.start();

    // Every raw object gets its manifest (the ETL ran), though no message about it survived.
    const manifests = async () => {
      const found: string[] = [];
      let token: string | undefined;
      do {
        const page = await stack.s3.send(
          new ListObjectsV2Command({
            Bucket: 'lake',
            Prefix: 'manifests/factory=wipe/',
            ContinuationToken: token,
          }),
        );
        for (const o of page.Contents ?? []) found.push(o.Key!);
        token = page.NextContinuationToken;
      } while (token);
      return found;
    };
    await waitFor(
      async () => (await manifests()).length === keys.length,
      240_000,
      `${keys.length} manifests`,
    );
    const health = await stack.health();
    expect(health.parts.reconciler).toBe('up');
    // The reconciler listed every raw object (1,100 of this test, 150 of the one before): past one page.
    expect(health.reconciler?.checked.raw).toBe(keys.length + FILES);
    const metrics = await (await fetch(`${stack.runtimeUrl}/metrics`)).text();
    const reemitted = Number(
      /telemetry_pipeline_reconciler_reemitted_total\{queue="etl"\} (\d+)/.exec(metrics)?.[1],
    );
    expect(reemitted).toBeGreaterThan(0);
  }, 360_000);
});
