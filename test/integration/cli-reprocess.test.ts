import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestKeyOf } from '../../functions/contracts/keys.js';
import { manifestSchema } from '../../functions/contracts/manifest.js';
import type { ReprocessOptions, ReprocessReport } from '../../local/reprocess.js';
import { ensureBuckets, localS3 } from '../../local/resources.js';
import { localSettings } from '../../local/settings.js';
import type { Target } from '../../local/target.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const ROOT = join(import.meta.dirname, '..', '..');
const PORTS = { S3_PORT: '33000', SQS_PORT: '33324', RUNTIME_PORT: '33300' };

/**
 * `telemetry-pipeline reprocess` on the embedded stack: a rule that got a file wrong, fixed, and the
 * file run again into the warehouse — corrected rows, none twice; a backfill of objects whose
 * notification never came; a dry run; the enrichment run again after a registry change; the warehouse
 * loading again. The reconciler is held off (grace of an hour) so that only the command moves objects.
 */

// The rules as first written: sensors-* read with a strptime layout that five lines do not follow, in
// UTC although the plant writes local time, with a constant wrong unit; events-* as events although
// they hold readings (and in Berlin time).
const WRONG_RULES = `version: 1
factories:
  plant:
    name: Plant
    timezone: Europe/Berlin
    files:
      - match: "sensors-*.jsonl"
        format: jsonl
        table: readings
        map: { ts: ts, device: device, metric: metric, value: value, unit: { const: F } }
        timestamp: { format: "%Y-%m-%d %H:%M:%S", timezone: UTC }
      - match: "events-*.jsonl"
        format: jsonl
        table: events
        map: { ts: ts, device: device, message: metric }
`;
// Fixed: sensors-* in the plant's zone (auto format), unit from the line: 60 readings over two UTC days
// (one more lake object), no rejects; events-* as readings, in UTC: one object of another table (fewer).
const FIXED_RULES = `version: 1
factories:
  plant:
    name: Plant
    timezone: Europe/Berlin
    files:
      - match: "sensors-*.jsonl"
        format: jsonl
        table: readings
        map: { ts: ts, device: device, metric: metric, value: value, unit: unit }
      - match: "events-*.jsonl"
        format: jsonl
        table: readings
        map: { ts: ts, device: device, metric: metric, value: value, unit: unit }
        timestamp: { timezone: UTC }
`;
const devices = (model: string) => `version: 1
devices:
  - { factory: plant, device: press-01, model: ${model}, line: Line 1, site: Augsburg, criticality: high, commissioned: 2019-04-01 }
  - { factory: plant, device: press-02, model: Schuler MSD 400, line: Line 1, site: Augsburg, criticality: medium, commissioned: 2020-09-15 }
`;
const ERROR_CODES = `version: 1
codes:
  - { code: E1001, category: hydraulics, severity: error, description: Pressure low, action: Check the pump }
`;

/** 60 readings of press-01, naive local time from 00:00 every 2 min; lines in `tSeparated` written with a T. */
function sensorLines(tSeparated: (i: number) => boolean = () => false): string {
  const lines: string[] = [];
  for (let i = 0; i < 60; i++) {
    const stamp = new Date(Date.UTC(2024, 2, 4) + i * 120_000).toISOString().slice(0, 19);
    lines.push(
      JSON.stringify({
        ts: tSeparated(i) ? stamp : stamp.replace('T', ' '),
        device: 'press-01',
        metric: 'temperature',
        value: 20 + i / 10,
        unit: 'C',
      }),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** 20 readings of press-02 on 1 March (ISO, UTC). */
function backfillLines(seed: number): string {
  return `${Array.from({ length: 20 }, (_, i) =>
    JSON.stringify({
      ts: new Date(Date.UTC(2024, 2, 1, 10) + i * 60_000).toISOString(),
      device: 'press-02',
      metric: 'pressure',
      value: seed + i / 100,
      unit: 'bar',
    }),
  ).join('\n')}\n`;
}

const A = 'plant/2024/03/04/sensors-a.jsonl';
const B = 'plant/2024/03/04/events-b.jsonl';
const BACKFILL = [1, 2, 3].map((i) => `plant/2024/03/01/backfill-${i}.jsonl`);
/** Also in the bucket before the pipeline ran; outside every date range below, so never processed. */
const OLDER = 'plant/2024/02/28/older.jsonl';

let stack: TestStack;
let config: string;
let data: string;
let target: Target;

beforeAll(async () => {
  config = await mkdtemp(join(tmpdir(), 'tp-reprocess-config-'));
  await writeFile(join(config, 'factories.yaml'), WRONG_RULES);
  await writeFile(join(config, 'devices.yaml'), devices('Schuler MSD 400'));
  await writeFile(join(config, 'error-codes.yaml'), ERROR_CODES);
  // Files already in the raw bucket before the pipeline was there: written by the S3 alone, so no
  // notification was ever sent for them (as for a bucket filled before deployment).
  data = await mkdtemp(join(tmpdir(), 'tp-reprocess-data-'));
  // Before anything creates the logger: expected failures would only clutter the output.
  process.env.LOG_LEVEL = 'fatal';
  const { startS3 } = await import('../../local/emulators.js');
  const settings = localSettings({ ...PORTS, PIPELINE_DATA: data });
  const s3 = await startS3(settings, () => undefined);
  const client = localS3(settings);
  try {
    await ensureBuckets(client);
    for (const [i, key] of BACKFILL.entries()) {
      await client.send(new PutObjectCommand({ Bucket: 'raw', Key: key, Body: backfillLines(i) }));
    }
    await client.send(new PutObjectCommand({ Bucket: 'raw', Key: OLDER, Body: backfillLines(9) }));
  } finally {
    client.destroy();
    await s3.stop();
  }
  stack = await startTestStack({
    ...PORTS,
    PIPELINE_CONFIG: config,
    PIPELINE_DATA: data,
    RECONCILE_GRACE_SECONDS: '3600',
    RECONCILE_INTERVAL_SECONDS: '3600',
  });
  const { resolveTarget } = await import('../../local/target.js');
  target = await resolveTarget();
}, 120_000);

afterAll(async () => {
  target?.s3.destroy();
  target?.sqs.destroy();
  await stack?.stop();
  await rm(data, { recursive: true, force: true });
  await rm(config, { recursive: true, force: true });
});

async function reprocess(opts: ReprocessOptions): Promise<{ report: ReprocessReport; lines: string[] }> {
  const { reprocess: run } = await import('../../local/reprocess.js');
  const lines: string[] = [];
  const report = await run(target, { timeout: 120, pollSeconds: 0.5, bars: false, ...opts }, (l) =>
    lines.push(l),
  );
  return { report, lines };
}

/** The CLI as a user runs it, against this stack. */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'telemetry-pipeline.mjs'), ...args], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        ...PORTS,
        PIPELINE_CONFIG: config,
        PIPELINE_DATA: join(data, 'cli'),
        LOG_LEVEL: 'warn',
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function manifestOf(key: string) {
  const text = await stack.getText('lake', manifestKeyOf('raw', key)).catch(() => undefined);
  return text === undefined ? undefined : manifestSchema.parse(JSON.parse(text));
}

async function drained() {
  await waitFor(
    async () => {
      const d = await stack.runtime.queueDepths();
      return d.etl === 0 && d.enrich === 0 && d.warehouse === 0;
    },
    30_000,
    'queues drained',
  );
}

const count = async (sql: string) => Number((await stack.queryWarehouse(sql))[0]!.n);

describe('telemetry-pipeline reprocess', () => {
  it('refuses an unknown factory, naming the ones it knows; --dry-run lists what it would send and sends nothing', async () => {
    const unknown = await cli(['reprocess', '--factory', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no factory "nope"; known: plant');

    await expect(reprocess({ factory: 'plant', from: '2024-3-1' })).rejects.toThrow(
      '--from: "2024-3-1" is not a day; write it as yyyy-mm-dd',
    );
    await expect(reprocess({ factory: 'plant', step: 'load' })).rejects.toThrow(
      '--step: "load" is not a step; use etl, enrich, warehouse',
    );

    const dry = await cli(['reprocess', '--factory', 'plant', '--to', '2024-03-01', '--dry-run']);
    expect(dry.stderr).toBe('');
    expect(dry.code).toBe(0);
    for (const key of [...BACKFILL, OLDER])
      expect(dry.stdout).toContain(`would send to etl: s3://raw/${key}`);
    expect(dry.stdout).toMatch(/dry run: 4 message\(s\) for 4 raw object\(s\) .* nothing was sent/);
    // Nothing went out: no message queued, no manifest made, even a moment later.
    await new Promise((r) => setTimeout(r, 1000));
    expect((await stack.runtime.queueDepths()).etl).toBe(0);
    for (const key of [...BACKFILL, OLDER]) expect(await manifestOf(key)).toBeUndefined();
  });

  it('backfills objects that never had a notification (those of the days asked for)', async () => {
    for (const key of BACKFILL) expect(await manifestOf(key)).toBeUndefined();
    const { report, lines } = await reprocess({
      factory: 'plant',
      from: '2024-03-01',
      to: '2024-03-01',
      wait: true,
    });
    expect(report.objects.sort()).toEqual(BACKFILL);
    expect(report.messages).toBe(3);
    expect(report.wait?.pending).toEqual([]);
    expect(report.wait?.files).toEqual(
      BACKFILL.map((key) =>
        expect.objectContaining({ key, complete: true, linesLoaded: 20, linesRejected: 0, rowsLoaded: 20 }),
      ),
    );
    expect(lines.join('\n')).toMatch(/3 file\(s\) through in .*: lines 60 loaded, 0 rejected; 60 row\(s\)/);
    const rows = await stack.queryWarehouse(
      `SELECT source_key, count(*) AS n FROM readings WHERE source_key LIKE 'plant/2024/03/01/%' GROUP BY 1 ORDER BY 1`,
    );
    expect(rows).toEqual(BACKFILL.map((source_key) => ({ source_key, n: '20' })));
    // The day left out was not sent.
    expect(await manifestOf(OLDER)).toBeUndefined();
  });

  it('runs files a wrong rule got wrong again after the fix: the warehouse holds the corrected rows, none twice', async () => {
    const aETag = await stack.put(
      A,
      sensorLines((i) => i >= 10 && i < 15),
    );
    await stack.put(B, sensorLines());
    await stack.waitForWarehouse([A, B]);
    // As the wrong rules made them: 5 lines of A rejected, the unit wrong, B as events over two days.
    expect(
      await stack.queryWarehouse(
        `SELECT count(*) AS n, min(unit) AS unit, max(unit) AS unit_max FROM readings WHERE source_key = '${A}'`,
      ),
    ).toEqual([{ n: '55', unit: 'F', unit_max: 'F' }]);
    expect(await count(`SELECT count(*) AS n FROM rejects WHERE source_key = '${A}'`)).toBe(5);
    expect(await count(`SELECT count(*) AS n FROM events WHERE source_key = '${B}'`)).toBe(60);
    // Two UTC days of one month: one lake object.
    expect(await count(`SELECT count(DISTINCT lake_key) AS n FROM events WHERE source_key = '${B}'`)).toBe(1);

    await writeFile(join(config, 'factories.yaml'), FIXED_RULES);
    // Uploading the same bytes again changes nothing: the ETL knows that version.
    const before = await manifestOf(A);
    expect(
      await stack.put(
        A,
        sensorLines((i) => i >= 10 && i < 15),
      ),
    ).toBe(aETag);
    await drained();
    expect((await manifestOf(A))?.finishedAt).toBe(before?.finishedAt);
    expect(await count(`SELECT count(*) AS n FROM readings WHERE source_key = '${A}'`)).toBe(55);

    const { report } = await reprocess({
      factory: 'plant',
      from: '2024-03-04',
      to: '2024-03-04',
      wait: true,
    });
    expect(report.objects.sort()).toEqual([B, A]);
    expect(report.wait?.pending).toEqual([]);
    expect(report.wait?.files).toEqual([
      expect.objectContaining({ key: B, complete: true, linesLoaded: 60, linesRejected: 0, rowsLoaded: 60 }),
      expect.objectContaining({ key: A, complete: true, linesLoaded: 60, linesRejected: 0, rowsLoaded: 60 }),
    ]);
    expect((await manifestOf(A))?.reprocess?.id).toBe(report.run.id);

    // A: every line once, in the plant's zone (two UTC days of one month: one lake object), the unit from the line.
    expect(
      await stack.queryWarehouse(`SELECT count(*) AS n, count(DISTINCT source_line) AS lines,
          count(DISTINCT lake_key) AS objects, min(unit) AS unit, max(unit) AS unit_max,
          CAST(min(ts) AS VARCHAR) AS first FROM readings WHERE source_key = '${A}'`),
    ).toEqual([
      { n: '60', lines: '60', objects: '1', unit: 'C', unit_max: 'C', first: '2024-03-03 23:00:00+00' },
    ]);
    expect(await count(`SELECT count(*) AS n FROM rejects WHERE source_key = '${A}'`)).toBe(0);
    // B: readings now, one object; its events (and their lake objects) are gone.
    expect(await count(`SELECT count(*) AS n FROM events WHERE source_key = '${B}'`)).toBe(0);
    expect(
      await stack.queryWarehouse(
        `SELECT count(*) AS n, count(DISTINCT source_line) AS lines, count(DISTINCT lake_key) AS objects FROM readings WHERE source_key = '${B}'`,
      ),
    ).toEqual([{ n: '60', lines: '60', objects: '1' }]);
    expect(await stack.list('lake', 'normalized/events/')).toEqual([]);
    expect(await stack.list('lake', 'enriched/events/')).toEqual([]);
    // The ledger: one row per lake object the files make now, and their manifests.
    expect(
      await stack.queryWarehouse(
        `SELECT source_key, kind, count(*) AS n FROM ledger WHERE source_key IN ('${A}', '${B}') GROUP BY ALL ORDER BY ALL`,
      ),
    ).toEqual([
      { source_key: B, kind: 'manifest', n: '1' },
      { source_key: B, kind: 'readings', n: '1' },
      { source_key: A, kind: 'manifest', n: '1' },
      { source_key: A, kind: 'readings', n: '1' },
    ]);
    expect(
      await stack.queryWarehouse(
        `SELECT source_key, lines_loaded, lines_rejected, rows_loaded, complete FROM pipeline_files WHERE source_key IN ('${A}', '${B}') ORDER BY 1`,
      ),
    ).toEqual([
      { source_key: B, lines_loaded: '60', lines_rejected: '0', rows_loaded: '60', complete: true },
      { source_key: A, lines_loaded: '60', lines_rejected: '0', rows_loaded: '60', complete: true },
    ]);
  });

  it('a second run leaves the same rows: no duplicates', async () => {
    const totals = `SELECT (SELECT count(*) FROM readings) AS readings, (SELECT count(*) FROM events) AS events,
      (SELECT count(*) FROM rejects) AS rejects, (SELECT count(*) FROM ledger) AS ledger,
      (SELECT count(*) FROM manifests) AS manifests`;
    const before = await stack.queryWarehouse(totals);
    const { report } = await reprocess({
      factory: 'plant',
      from: '2024-03-04',
      to: '2024-03-04',
      wait: true,
    });
    expect(report.wait?.pending).toEqual([]);
    expect((await manifestOf(A))?.reprocess?.id).toBe(report.run.id);
    expect(await stack.queryWarehouse(totals)).toEqual(before);
    expect(
      await count(
        `SELECT count(*) AS n FROM (SELECT source_key, source_line FROM readings GROUP BY ALL HAVING count(*) > 1)`,
      ),
    ).toBe(0);
  });

  it('--step enrich enriches again with the registry as it is now, without running the ETL', async () => {
    await stack.runtime.s3.send(
      new PutObjectCommand({
        Bucket: 'lake',
        Key: 'reference/devices.yaml',
        Body: devices('Schuler MSD 630'),
      }),
    );
    const manifest = await manifestOf(A);
    const { report } = await reprocess({
      factory: 'plant',
      key: 'sensors-*.jsonl',
      step: 'enrich',
      wait: true,
    });
    expect(report.objects).toEqual([A]);
    // One message: the file's manifest (enrich does both of its normalized objects from it).
    expect(report.messages).toBe(1);
    expect(report.wait?.pending).toEqual([]);
    expect(
      await stack.queryWarehouse(
        `SELECT count(*) AS n, min(model) AS model, max(model) AS model_max FROM readings WHERE source_key = '${A}'`,
      ),
    ).toEqual([{ n: '60', model: 'Schuler MSD 630', model_max: 'Schuler MSD 630' }]);
    // B was not asked for: it keeps the registry of its last enrichment.
    expect(
      await stack.queryWarehouse(`SELECT DISTINCT model FROM readings WHERE source_key = '${B}'`),
    ).toEqual([{ model: 'Schuler MSD 400' }]);
    // The ETL did not run: the manifest is the one it was.
    expect(await manifestOf(A)).toEqual(manifest);
  });

  it('--step warehouse loads the enriched objects again, replacing their rows', async () => {
    const loadedAt = `SELECT CAST(max(loaded_at) AS VARCHAR) AS t FROM ledger WHERE source_key = '${A}'`;
    const [before] = await stack.queryWarehouse(loadedAt);
    const { report } = await reprocess({
      factory: 'plant',
      key: 'plant/2024/03/*/sensors-a.jsonl',
      step: 'warehouse',
      wait: true,
    });
    expect(report.objects).toEqual([A]);
    // The manifest and the file's one enriched object.
    expect(report.messages).toBe(2);
    expect(report.wait?.pending).toEqual([]);
    const [after] = await stack.queryWarehouse(loadedAt);
    expect(String(after!.t) > String(before!.t)).toBe(true);
    expect(await count(`SELECT count(*) AS n FROM readings WHERE source_key = '${A}'`)).toBe(60);
    expect(await count(`SELECT count(*) AS n FROM ledger WHERE source_key = '${A}'`)).toBe(2);
    await drained();
    // The file still 02/28 was never sent by any run above.
    expect(await manifestOf(OLDER)).toBeUndefined();
  });
});
