import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { joinLines, jsonlReadings } from '../../local/demo-data.js';
import { startTestStack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A full temporary folder: the test mounts a small tmpfs as the functions' temp folder (as /tmp is in
 * Lambda: bounded), fills it, and uploads a file. The ETL must say what happened — ENOSPC, where, how
 * much it needs — and the file must go through once space is back, without a restart.
 */
const MOUNT = join(tmpdir(), `tp-small-tmp-${process.pid}`);
const FILLER = join(MOUNT, 'filler');
let stack: Awaited<ReturnType<typeof startTestStack>>;

beforeAll(async () => {
  mkdirSync(MOUNT, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', MOUNT]);
  } catch (err) {
    throw new Error(
      `this test mounts a tmpfs and must run as root (mount failed: ${(err as Error).message})`,
    );
  }
  stack = await startTestStack({
    PIPELINE_TMP: MOUNT,
    RECONCILE_INTERVAL_SECONDS: '2',
    RECONCILE_GRACE_SECONDS: '1',
    LOCAL_RETRY_DELAY_SECONDS: '0',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'fatal',
  });
});

afterAll(async () => {
  await stack?.stop();
  execFileSync('umount', [MOUNT]);
  await rm(MOUNT, { recursive: true, force: true });
});

describe('a full temporary folder', () => {
  it('is reported as ENOSPC with the folder and the space needed, and the file is loaded once space is back', async () => {
    // Leave about 1 MB: less than one 4 MB chunk of the byte pass.
    await writeFile(FILLER, Buffer.alloc(63 * 1024 * 1024));
    const key = 'space/2026/11/25/big.jsonl';
    const body = joinLines(
      jsonlReadings({ seed: 7, lines: 60_000, start: new Date('2026-11-25T00:00:00Z') }),
    );
    const eTag = await stack.put(key, body);

    const { etlObject } = await import('../../functions/etl/etl-object.js');
    const { loadFactories } = await import('../../functions/contracts/factories.js');
    const { openDuckDB } = await import('../../functions/core/duckdb.js');
    const failure = await etlObject(
      { bucket: 'raw', key, eTag, size: body.length, eventName: 'ObjectCreated:Put' },
      {
        factories: loadFactories(join(import.meta.dirname, '..', '..', 'config')),
        db: await openDuckDB(),
        lakeBucket: 'lake',
        tmpDir: MOUNT,
        maxLineBytes: 1024 * 1024,
      },
    ).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(failure?.name).toBe('TempSpaceError');
    expect(failure?.message).toMatch(
      new RegExp(
        `^s3://raw/${key}: no space left on device in ${MOUNT}: \\d+\\.\\d MB free, processing this object needs about \\d+\\.\\d MB there$`,
      ),
    );
    expect((failure?.cause as NodeJS.ErrnoException | undefined)?.code).toBe('ENOSPC');

    // The stack's own ETL of the upload fails the same way, until its message is in the DLQ.
    await waitFor(
      async () => (await stack.runtime.queueDepths())['etl-dlq']! >= 1,
      60_000,
      'the message in etl-dlq',
    );
    // Space comes back: the reconciler sends the object again, without a restart.
    await rm(FILLER);
    const manifest = await stack.waitForManifest(key, eTag, 90_000);
    const { registry } = await import('../../functions/core/telemetry.js');
    const reemitted = (
      await registry.getSingleMetric('telemetry_pipeline_reconciler_reemitted_total')?.get()
    )?.values.find((v) => v.labels.queue === 'etl');
    expect(reemitted?.value).toBeGreaterThanOrEqual(1);
    expect(manifest.lines.total).toBe(60_000);
    await stack.waitForWarehouse([key], 60_000);
    const [row] = await stack.queryWarehouse(
      `SELECT count(*) AS n FROM readings WHERE source_key = '${key}'`,
    );
    expect(row).toEqual({ n: '60000' });
  }, 180_000);
});
