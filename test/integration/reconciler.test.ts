import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrichedKey, manifestKeyOf } from '../../functions/contracts/keys.js';
import { joinLines, jsonlReadings } from '../../local/demo-data.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The reconciler on the embedded stack: work a stage lost is found by comparing what exists, and the
 * missing stage's event is sent again. Runs are triggered by the test (no grace period, no timer).
 */
let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({ RECONCILE_GRACE_SECONDS: '0', RECONCILE_INTERVAL_SECONDS: '3600' });
});
afterAll(async () => {
  await stack?.stop();
});

const key = 'recon/2026/11/25/line-1.jsonl';
const LINES = 40;

async function reconcileNow() {
  await stack.runtime.reconciler.runOnce();
  const status = stack.runtime.reconciler.status;
  if (status.state !== 'ok') throw new Error(`reconciler: ${JSON.stringify(status)}`);
  return status.report;
}

/** The reconciler runs until nothing is missing (what it re-emits is processed meanwhile). */
async function settle() {
  return waitFor(
    async () => {
      const report = await reconcileNow();
      if (process.env.DEBUG_RECONCILE) console.log(JSON.stringify(report));
      return Object.keys(report.missing).length === 0 && report.waiting === 0 && report;
    },
    60_000,
    'nothing missing',
  );
}

describe('the reconciler', () => {
  beforeAll(async () => {
    const eTag = await stack.put(
      key,
      joinLines(jsonlReadings({ seed: 3, lines: LINES, start: new Date('2026-11-25T00:00:00Z') })),
    );
    await stack.waitForManifest(key, eTag);
    await stack.waitForWarehouse([key]);
    await settle();
  });

  it('finds nothing to do when every stage is complete', async () => {
    const report = await reconcileNow();
    expect(report.reemitted).toEqual({});
    expect(report.checked).toMatchObject({ raw: 1, manifests: 1, normalized: 1, enriched: 1, ledger: 2 });
  });

  it('a raw object whose ETL never happened (lost notification) is sent to etl again', async () => {
    await stack.runtime.s3.send(new DeleteObjectCommand({ Bucket: 'lake', Key: manifestKeyOf('raw', key) }));
    const report = await reconcileNow();
    expect(report.missing['no-manifest']).toBe(1);
    expect(report.reemitted.etl).toBe(1);
    await stack.waitForManifest(key);
    await settle();
    const [row] = await stack.queryWarehouse(
      `SELECT count(*) AS n FROM readings WHERE source_key = '${key}'`,
    );
    expect(row).toEqual({ n: String(LINES) });
  });

  it('a normalized object that was never enriched is sent to enrich again, and loaded once', async () => {
    const [normalized] = await stack.list('lake', 'normalized/');
    await stack.runtime.s3.send(
      new DeleteObjectCommand({ Bucket: 'lake', Key: enrichedKey(normalized!.key) }),
    );
    const report = await reconcileNow();
    expect(report.missing['not-enriched']).toBe(1);
    expect(report.reemitted.enrich).toBe(1);
    await waitFor(
      async () => (await stack.list('lake', 'enriched/')).length === 1,
      30_000,
      'the enriched object',
    );
    await settle();
    const [row] = await stack.queryWarehouse(
      `SELECT count(*) AS n, count(DISTINCT source_line) AS lines FROM readings WHERE source_key = '${key}'`,
    );
    expect(row).toEqual({ n: String(LINES), lines: String(LINES) });
  });

  it('a failing run makes /health say so, until a run succeeds', async () => {
    // A warehouse file that is not a DuckDB database: the ledger cannot be read.
    const [delta] = await stack.list('warehouse', 'telemetry-delta');
    const original = await stack.runtime.s3.send(
      new GetObjectCommand({ Bucket: 'warehouse', Key: delta!.key }),
    );
    const bytes = await original.Body!.transformToByteArray();
    await stack.put(delta!.key, 'not a database', 'warehouse');
    await stack.runtime.reconciler.runOnce();
    const res = await fetch(`${stack.runtime.url}/health`);
    expect(res.status).toBe(503);
    const health = (await res.json()) as { status: string; parts: Record<string, string> };
    expect(health.status).toBe('degraded');
    expect(health.parts.reconciler).toMatch(/^failed at \S+: /);

    await stack.runtime.s3.send(new PutObjectCommand({ Bucket: 'warehouse', Key: delta!.key, Body: bytes }));
    await reconcileNow();
    expect((await fetch(`${stack.runtime.url}/health`)).status).toBe(200);
  });
});
