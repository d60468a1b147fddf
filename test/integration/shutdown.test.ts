import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestKeyOf } from '../../functions/contracts/keys.js';
import { StackProcess } from '../helpers/stack-process.js';
import { waitFor } from '../helpers/wait.js';

/** SIGTERM (and Ctrl+C) while DuckDB is busy with a large file: the process still ends promptly. */
const PORTS = { s3: 19200, sqs: 19524, runtime: 13200 };
let stack: StackProcess;

beforeAll(async () => {
  stack = await StackProcess.create(PORTS, { RECONCILE_INTERVAL_SECONDS: '3', RECONCILE_GRACE_SECONDS: '5' });
  await stack.start();
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

/** About `mb` MB of CSV readings, one line per second of a day and more. */
function bigCsv(mb: number): Buffer {
  const lines = ['ts,device,metric,value'];
  // In the past, all of it: lines more than a day ahead of the object are rejected as implausible.
  const start = Date.parse('2026-01-01T00:00:00Z');
  let size = 0;
  for (let i = 0; size < mb * 1024 * 1024; i++) {
    const line = `${new Date(start + i * 100).toISOString()},press-${i % 17},temperature,${(i % 1000) / 10}`;
    lines.push(line);
    size += line.length + 1;
  }
  return Buffer.from(`${lines.join('\n')}\n`);
}

async function manifestExists(key: string): Promise<boolean> {
  return stack.s3.send(new GetObjectCommand({ Bucket: 'lake', Key: manifestKeyOf('raw', key) })).then(
    () => true,
    () => false,
  );
}

describe('SIGTERM while an ETL runs', () => {
  it('ends the process within 10 s; the next start processes the file', async () => {
    const key = 'term/2026/11/24/big.csv';
    const body = bigCsv(150);
    const lines = body.toString('latin1').split('\n').length - 2; // less header and the final newline
    await new Upload({ client: stack.s3, params: { Bucket: 'raw', Key: key, Body: body } }).done();

    // The ETL has started once its work folder exists, and has not finished while it has no manifest.
    const tmp = join(stack.data, 'tmp');
    await waitFor(
      async () => (await readdir(tmp).catch(() => [])).some((f) => f.startsWith('etl-')),
      30_000,
      'the ETL to start',
    );
    expect(await manifestExists(key)).toBe(false);
    const { ms, code } = await stack.signal('SIGTERM');
    expect(ms).toBeLessThan(10_000);
    expect(code).toBe(0); // stopped, not cut off by the 10 s limit (exit 1) nor crashed

    await stack.start();
    await waitFor(() => manifestExists(key), 120_000, 'the manifest after the restart');
    const manifest = JSON.parse(
      await (
        await stack.s3.send(new GetObjectCommand({ Bucket: 'lake', Key: manifestKeyOf('raw', key) }))
      ).Body!.transformToString(),
    ) as { lines: { total: number; loaded: number } };
    expect(manifest.lines).toMatchObject({ total: lines + 1, loaded: lines });
  }, 300_000);
});
