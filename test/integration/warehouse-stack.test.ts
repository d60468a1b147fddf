import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestKeyOf } from '../../functions/contracts/keys.js';
import {
  messageDeduplicationId,
  WAREHOUSE_GROUP,
  type WarehouseMessage,
} from '../../functions/contracts/messages.js';
import { buildS3Notification } from '../../functions/core/s3-event.js';
import { joinLines, jsonlReadings, syslogLines, wideCsv } from '../../local/demo-data.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack();
});
afterAll(async () => {
  await stack?.stop();
});

const start = new Date('2024-03-04T08:00:00Z');
const day = 'demo/2024/03/04';

describe('raw upload → enriched rows in the DuckDB warehouse', () => {
  const files = {
    [`${day}/sensors-a.jsonl`]: joinLines(
      jsonlReadings({ seed: 1, lines: 2000, start, stepMs: 1000, badEvery: 250 }),
    ),
    [`${day}/line-1.csv`]: joinLines(wideCsv({ seed: 2, lines: 301, start })),
    [`${day}/gateway.syslog`]: joinLines(syslogLines({ seed: 3, lines: 400, start })),
  };

  it('loads every file enriched, and input lines = warehouse rows + rejects', async () => {
    for (const [key, body] of Object.entries(files)) await stack.put(key, body);
    await stack.waitForWarehouse(Object.keys(files));
    const [counts] = await stack.queryWarehouse(`SELECT
        (SELECT count(*) FROM readings WHERE source_key LIKE '${day}/%') AS readings,
        (SELECT count(*) FROM readings WHERE source_key LIKE '${day}/%' AND model IS NOT NULL) AS readings_enriched,
        (SELECT count(*) FROM events WHERE source_key LIKE '${day}/%') AS events,
        (SELECT count(*) FROM events WHERE source_key LIKE '${day}/%' AND category IS NOT NULL) AS events_with_code,
        (SELECT count(*) FROM rejects WHERE source_key LIKE '${day}/%') AS rejects`);
    // 2000 JSONL lines with 8 bad ones; 300 CSV rows × 4 metrics; 400 syslog lines.
    expect(counts).toEqual({
      readings: String(1992 + 1200),
      readings_enriched: String(1992 + 1200),
      events: '400',
      events_with_code: expect.any(String),
      rejects: '8',
    });
    expect(Number(counts!.events_with_code)).toBeGreaterThan(0);
    const perFile =
      await stack.queryWarehouse(`SELECT source_key, lines_total, lines_loaded, lines_rejected, lines_header, lines_blank,
        rows_expected, rows_loaded, complete FROM pipeline_files WHERE source_key LIKE '${day}/%' ORDER BY 1`);
    for (const f of perFile) {
      expect(
        Number(f.lines_loaded) + Number(f.lines_rejected) + Number(f.lines_header) + Number(f.lines_blank),
      ).toBe(Number(f.lines_total));
      expect(f.complete).toBe(true);
    }
    const [jsonl] = await stack.queryWarehouse(`SELECT
        (SELECT count(*) FROM readings WHERE source_key = '${day}/sensors-a.jsonl') +
        (SELECT count(*) FROM rejects WHERE source_key = '${day}/sensors-a.jsonl') AS n`);
    expect(jsonl).toEqual({ n: '2000' });
    const views = await stack.queryWarehouse(`SELECT
        (SELECT count(*) FROM device_health_hourly WHERE factory = 'demo') AS health,
        (SELECT count(*) FROM alarms_daily WHERE day = DATE '2024-03-04') AS alarms,
        (SELECT count(*) FROM files WHERE source_key LIKE '${day}/%') AS ledger,
        (SELECT count(*) FROM devices) AS devices, (SELECT count(*) FROM error_codes) AS codes`);
    expect(Number(views[0]!.health)).toBeGreaterThan(0);
    expect(Number(views[0]!.alarms)).toBeGreaterThan(0);
    expect(views[0]).toMatchObject({ devices: '5', codes: '6' });
  });

  it('20 concurrent uploads are each loaded exactly once', async () => {
    const keys = Array.from(
      { length: 20 },
      (_, i) => `burst/2024/03/04/f-${String(i).padStart(2, '0')}.jsonl`,
    );
    await Promise.all(
      keys.map((k, i) => stack.put(k, joinLines(jsonlReadings({ seed: 100 + i, lines: 100, start })))),
    );
    await stack.waitForWarehouse(keys, 90_000);
    const rows =
      await stack.queryWarehouse(`SELECT source_key, count(*) AS n, count(DISTINCT source_line) AS lines, count(DISTINCT lake_key) AS objects
        FROM readings WHERE source_key LIKE 'burst/%' GROUP BY 1 ORDER BY 1`);
    expect(rows).toHaveLength(20);
    for (const r of rows) expect(r).toMatchObject({ n: '100', lines: '100', objects: '1' });
    const [ledger] = await stack.queryWarehouse(
      `SELECT count(*) AS n, count(DISTINCT lake_key) AS keys FROM ledger WHERE source_key LIKE 'burst/%'`,
    );
    expect(ledger!.n).toBe(ledger!.keys);
  });

  it('a file spanning 40 days: one lake object per month, one enrich pass, one warehouse commit', async () => {
    const key = 'span/2024/03/04/year.jsonl';
    // 40 days × 30 readings, two devices; the ETL writes one object per month (January, February),
    // enrich writes their enriched objects in one pass, the writer loads both in one commit.
    const lines = Array.from({ length: 1200 }, (_, i) =>
      JSON.stringify({
        ts: new Date(
          Date.UTC(2024, 0, 1) + Math.floor(i / 30) * 86_400_000 + (i % 30) * 60_000,
        ).toISOString(),
        device: `press-0${(i % 2) + 1}`,
        metric: 'temp',
        value: i % 17,
      }),
    );
    await stack.put(key, joinLines(lines));
    await stack.waitForWarehouse([key], 60_000);
    const [loaded] =
      await stack.queryWarehouse(`SELECT count(*) AS rows, count(DISTINCT source_line) AS lines,
        count(DISTINCT lake_key) AS objects, count(DISTINCT date) AS days FROM readings WHERE source_key = '${key}'`);
    expect(loaded).toEqual({ rows: '1200', lines: '1200', objects: '2', days: '40' });
    // One ledger row per object and one for the manifest, all written by the same commit (one `now()`).
    const [ledger] = await stack.queryWarehouse(`SELECT count(*) AS n, count(DISTINCT lake_key) AS keys,
        count(DISTINCT loaded_at) AS commits, sum(rows) FILTER (kind = 'readings') AS rows
        FROM ledger WHERE source_key = '${key}'`);
    expect(ledger).toEqual({ n: '3', keys: '3', commits: '1', rows: '1200' });
    expect((await stack.list('lake', 'enriched/readings/factory=span/')).map((o) => o.key)).toEqual([
      expect.stringMatching(/^enriched\/readings\/factory=span\/month=2024-01\//),
      expect.stringMatching(/^enriched\/readings\/factory=span\/month=2024-02\//),
    ]);
  });

  it('a replayed notification or warehouse message adds no rows', async () => {
    const key = `${day}/sensors-a.jsonl`;
    const [before] = await stack.queryWarehouse(
      'SELECT (SELECT count(*) FROM readings) AS r, (SELECT count(*) FROM ledger) AS l',
    );
    const [entry] = await stack.queryWarehouse(
      `SELECT lake_key, etag, source_etag, CAST(raw_created_at AS VARCHAR) AS created FROM ledger WHERE source_key = '${key}' AND kind = 'readings'`,
    );
    // Replay the lake notifications (enrich runs again): the file's manifest, and a normalized object
    // (from a bucket still configured as an earlier release had it: enrich leaves it to the manifest) …
    const manifestKey = manifestKeyOf('raw', key);
    const [manifest] = await stack.list('lake', manifestKey);
    const normalized = String(entry!.lake_key).replace(/^enriched\//, 'normalized/');
    const [obj] = await stack.list('lake', normalized);
    for (const [k, eTag] of [
      [manifestKey, manifest!.eTag],
      [normalized, obj!.eTag],
    ] as const) {
      await stack.runtime.sqs.send(
        new SendMessageCommand({
          QueueUrl: stack.runtime.queueUrls.enrich,
          MessageBody: JSON.stringify(
            buildS3Notification({ bucket: 'lake', key: k, size: 1, eTag, eventName: 'ObjectCreated:Put' }),
          ),
        }),
      );
    }
    // … and warehouse messages themselves, past FIFO deduplication: the file as enrich sends it, and
    // one object as an earlier release's enrich did.
    const messages: WarehouseMessage[] = [
      {
        kind: 'files',
        files: [
          { bucket: 'lake', key: manifestKey, eTag: manifest!.eTag, enrichedAt: new Date().toISOString() },
        ],
      },
      {
        kind: 'data',
        table: 'readings',
        bucket: 'lake',
        key: String(entry!.lake_key),
        eTag: String(entry!.etag),
        rows: 1992,
        sourceKey: key,
        sourceETag: String(entry!.source_etag),
        rawCreatedAt: new Date(String(entry!.created)).toISOString(),
        enrichedAt: new Date().toISOString(),
      },
    ];
    for (const message of messages) {
      await stack.runtime.sqs.send(
        new SendMessageCommand({
          QueueUrl: stack.runtime.queueUrls.warehouse,
          MessageBody: JSON.stringify(message),
          MessageGroupId: WAREHOUSE_GROUP,
          MessageDeduplicationId: messageDeduplicationId(message, ['replay']),
        }),
      );
    }
    await waitFor(
      async () => {
        const d = await stack.runtime.queueDepths();
        return d.enrich === 0 && d.warehouse === 0;
      },
      30_000,
      'queues drained',
    );
    const [after] = await stack.queryWarehouse(
      'SELECT (SELECT count(*) FROM readings) AS r, (SELECT count(*) FROM ledger) AS l',
    );
    expect(after).toEqual(before);
  });
});

/**
 * A warehouse of a test's own (own bucket, own files), written by the domain function directly, with
 * the bundled reference data: the shared one keeps what the other tests loaded.
 */
async function ownWarehouse(bucket: string) {
  await stack.runtime.s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const { WarehouseFiles } = await import('../../functions/warehouse/warehouse-file.js');
  const { bundledReference } = await import('../../functions/contracts/reference.js');
  const dir = await mkdtemp(join(stack.data, `${bucket}-`));
  const ref = bundledReference(join(import.meta.dirname, '..', '..', 'config'));
  return {
    files: new WarehouseFiles(bucket, dir),
    warehouseBucket: bucket,
    tmpDir: dir,
    baselineDays: 7,
    reference: async () => ({ ...ref, sources: { devices: 'b', errorCodes: 'b' } }),
  };
}

describe('the warehouse retention (WAREHOUSE_RETENTION_DAYS)', () => {
  it('a compaction drops whole files past it — rows, rejects, ledger, manifest — and they are not loaded again', async () => {
    const old = 'ret/2024/03/04/old.jsonl';
    const recent = `ret/${new Date().toISOString().slice(0, 10).replaceAll('-', '/')}/recent.jsonl`;
    await stack.put(old, joinLines(jsonlReadings({ seed: 31, lines: 100, start, badEvery: 50 })));
    await stack.put(
      recent,
      joinLines(jsonlReadings({ seed: 32, lines: 50, start: new Date(Date.now() - 3_600_000) })),
    );
    await stack.waitForWarehouse([old, recent]);
    // A warehouse of its own: the shared one keeps its 2024 data.
    const deps = await ownWarehouse('retention-test');
    const { loadBatch } = await import('../../functions/warehouse/load-batch.js');
    const message = async (...raw: string[]): Promise<WarehouseMessage> => ({
      kind: 'files',
      files: await Promise.all(
        raw.map(async (key) => {
          const [m] = await stack.list('lake', manifestKeyOf('raw', key));
          return { bucket: 'lake', key: m!.key, eTag: m!.eTag, enrichedAt: new Date().toISOString() };
        }),
      ),
    });
    const per = async (key: string) =>
      (
        await stack.queryWarehouse(
          `SELECT
            (SELECT count(*) FROM readings WHERE source_key = '${key}') AS readings,
            (SELECT count(*) FROM rejects WHERE source_key = '${key}') AS rejects,
            (SELECT count(*) FROM ledger WHERE source_key = '${key}') AS ledger,
            (SELECT count(*) FROM manifests WHERE source_key = '${key}') AS manifests`,
          'retention-test',
        )
      )[0];
    // Without a retention both files load.
    expect(await loadBatch([await message(old, recent)], deps)).toMatchObject({ objects: 4 });
    expect(await per(old)).toEqual({ readings: '98', rejects: '2', ledger: '2', manifests: '1' });

    // Retention goes by whole UTC months: on March 20, 2024, ten days' retention keeps the file of
    // March 4 (its month has not ended) …
    const compact = { minBytes: 0, baseFraction: 0 };
    const inMonth = await loadBatch([await message(old)], {
      ...deps,
      compaction: compact,
      retentionDays: 10,
      now: () => new Date('2024-03-20T00:00:00Z'),
    });
    expect(inMonth).toMatchObject({ compacted: 'base' });
    expect(await per(old)).toEqual({ readings: '98', rejects: '2', ledger: '2', manifests: '1' });

    // … and today a base compaction with a retention of 365 days drops it; the recent file stays.
    const stats = await loadBatch([await message(old)], {
      ...deps,
      compaction: compact,
      retentionDays: 365,
    });
    expect(stats).toMatchObject({ objects: 0, compaction: 'done', compacted: 'base' });
    expect(await per(old)).toEqual({ readings: '0', rejects: '0', ledger: '1', manifests: '0' });
    expect(await per(recent)).toEqual({ readings: '50', rejects: '0', ledger: '2', manifests: '1' });
    // What stays of it is its manifest version, retired: accounted for, so the reconciler (which reads
    // this ledger) neither reads that manifest again nor sends it.
    const [oldManifest] = await stack.list('lake', manifestKeyOf('raw', old));
    const retired = await stack.queryWarehouse(
      `SELECT lake_key, etag, kind FROM ledger WHERE source_key = '${old}'`,
      'retention-test',
    );
    expect(retired).toEqual([{ lake_key: oldManifest!.key, etag: oldManifest!.eTag, kind: 'retired' }]);
    expect(
      await stack.queryWarehouse(
        `SELECT count(*) AS n FROM files WHERE source_key = '${old}'`,
        'retention-test',
      ),
    ).toEqual([{ n: '0' }]);

    // Sent again (a reprocess, a late backfill), the old file is not loaded: past the retention.
    expect(await loadBatch([await message(old)], { ...deps, retentionDays: 365 })).toMatchObject({
      objects: 0,
      skipped: 1,
    });
    expect(await per(old)).toEqual({ readings: '0', rejects: '0', ledger: '1', manifests: '0' });
    // A file past the retention sent to the writer (a late backfill, a reprocess) is retired at once —
    // whatever of it was loaded goes — through a `manifest` message (reprocess --step warehouse) as
    // through `files`; its data messages are skipped.
    const backfill = 'ret/2024/05/06/late.jsonl';
    await stack.put(
      backfill,
      joinLines(jsonlReadings({ seed: 33, lines: 20, start: new Date('2024-05-06T00:00:00Z') })),
    );
    await stack.waitForWarehouse([backfill]);
    const [late] = await stack.list('lake', manifestKeyOf('raw', backfill));
    const [lateData] = await stack.list('lake', `enriched/readings/factory=ret/month=2024-05/`);
    const [lateRaw] = await stack.list('raw', backfill);
    await loadBatch([await message(backfill)], deps);
    expect(await per(backfill)).toEqual({ readings: '20', rejects: '0', ledger: '2', manifests: '1' });
    const viaReprocess = await loadBatch(
      [
        { kind: 'manifest', bucket: 'lake', key: late!.key, eTag: late!.eTag },
        {
          kind: 'data',
          table: 'readings',
          bucket: 'lake',
          key: lateData!.key,
          eTag: lateData!.eTag,
          rows: 20,
          sourceKey: backfill,
          sourceETag: lateRaw!.eTag,
          rawCreatedAt: new Date().toISOString(),
          enrichedAt: new Date().toISOString(),
        },
      ],
      { ...deps, retentionDays: 365 },
    );
    expect(viaReprocess).toMatchObject({ objects: 0, skipped: 2 });
    expect(await per(backfill)).toEqual({ readings: '0', rejects: '0', ledger: '1', manifests: '0' });
    // Retired once: a redelivery leaves its ledger row as it is.
    const retiredAt = async () =>
      (
        await stack.queryWarehouse(
          `SELECT kind, CAST(loaded_at AS VARCHAR) AS t FROM ledger WHERE source_key = '${backfill}'`,
          'retention-test',
        )
      )[0];
    const first = await retiredAt();
    expect(first).toMatchObject({ kind: 'retired' });
    await loadBatch([{ kind: 'manifest', bucket: 'lake', key: late!.key, eTag: late!.eTag }], {
      ...deps,
      retentionDays: 365,
    });
    expect(await retiredAt()).toEqual(first);
    // The lake keeps it.
    expect(await stack.list('lake', manifestKeyOf('raw', old))).toHaveLength(1);
  });
});

describe('the warehouse writer, crashing between load and upload', () => {
  it('the retry produces the right file: every object once', async () => {
    // A second warehouse (own bucket and key), written by the domain function directly.
    const deps = await ownWarehouse('crash-test');
    const { loadBatch } = await import('../../functions/warehouse/load-batch.js');
    const objects =
      await stack.queryWarehouse(`SELECT lake_key, etag, source_key, source_etag, CAST(raw_created_at AS VARCHAR) AS created, rows
        FROM ledger WHERE kind = 'readings' AND source_key LIKE 'burst/%' ORDER BY 1 LIMIT 2`);
    const [a, b] = objects.map(
      (o): Extract<WarehouseMessage, { kind: 'data' }> => ({
        kind: 'data',
        table: 'readings',
        bucket: 'lake',
        key: String(o.lake_key),
        eTag: String(o.etag),
        rows: Number(o.rows),
        sourceKey: String(o.source_key),
        sourceETag: String(o.source_etag),
        rawCreatedAt: new Date(String(o.created)).toISOString(),
        enrichedAt: new Date().toISOString(),
      }),
    );
    await loadBatch([a!], deps);
    await expect(
      loadBatch([b!], {
        ...deps,
        commit: async () => {
          throw new Error('killed before upload');
        },
      }),
    ).rejects.toThrow('killed before upload');
    const retry = await loadBatch([b!], deps);
    expect(retry).toMatchObject({ objects: 1, skipped: 0 });
    const replay = await loadBatch([a!, b!], deps);
    expect(replay).toMatchObject({ objects: 0, skipped: 2 });

    const rows = await stack.queryWarehouse(
      'SELECT lake_key, count(*) AS n FROM readings GROUP BY 1 ORDER BY 1',
      'crash-test',
    );
    expect(rows).toEqual([
      { lake_key: a!.key, n: '100' },
      { lake_key: b!.key, n: '100' },
    ]);
  });
});

describe('the query API (api function behind /api on the runtime)', () => {
  it('answers status openly and queries with the bearer token; refuses file access from SQL', async () => {
    process.env.API_TOKEN = 'test-token';
    try {
      const health = await fetch(`${stack.runtime.url}/api/status`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({
        status: 'ok',
        warehouse: { eTag: expect.any(String), bytes: expect.any(Number) },
      });
      const post = (body: unknown, token?: string) =>
        fetch(`${stack.runtime.url}/api/query`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(token ? { authorization: `Bearer ${token}` } : {}),
          },
          body: JSON.stringify(body),
        });
      expect((await post({ sql: 'select 1' })).status).toBe(401);
      expect((await post({ sql: 'select 1' }, 'wrong')).status).toBe(401);
      const ok = await post(
        { sql: "select count(*) as n from readings where source_key like 'burst/%'" },
        'test-token',
      );
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ columns: ['n'], rows: [{ n: '2000' }] });
      const bad = await post({ sql: 'select * from no_such_table' }, 'test-token');
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { message: string }).message).toMatch(/no_such_table/);
      const fileRead = await post({ sql: "select * from read_csv('/etc/passwd')" }, 'test-token');
      expect(fileRead.status).toBe(400);
      const write = await post({ sql: 'delete from readings' }, 'test-token');
      expect(write.status).toBe(400);
      // Nothing but one reading statement: the copies' paths are attached already, and DETACH then a
      // read-write ATTACH of the same path would otherwise reach them.
      for (const sql of [
        'DETACH base',
        'USE base',
        "ATTACH 'x.duckdb' AS x",
        'SET threads = 1',
        'CHECKPOINT',
        'select 1; detach base',
        'EXPLAIN ANALYZE CHECKPOINT',
      ]) {
        const res = await post({ sql }, 'test-token');
        expect(res.status, sql).toBe(400);
        expect(((await res.json()) as { message: string }).message, sql).toMatch(
          /only queries that read|one statement at a time/,
        );
      }
      expect((await post({ sql: 'describe readings' }, 'test-token')).status).toBe(200);
      const big = (await (await post({ sql: 'select * from range(20000)' }, 'test-token')).json()) as {
        rows: unknown[];
        truncated?: boolean;
      };
      expect([big.rows.length, big.truncated]).toEqual([10_000, true]);
      const files = await fetch(`${stack.runtime.url}/api/files?limit=5`, {
        headers: { authorization: 'Bearer test-token' },
      });
      expect(((await files.json()) as { items: unknown[] }).items).toHaveLength(5);
    } finally {
      delete process.env.API_TOKEN;
    }
  });
});

describe('reference data updated in the object store', () => {
  it('is used from the next file on, without a restart', async () => {
    const { readFileSync } = await import('node:fs');
    const bundled = readFileSync(join(import.meta.dirname, '..', '..', 'config', 'devices.yaml'), 'utf8');
    const updated = `${bundled}  - { factory: refr, device: kiln-07, model: Riedhammer RK 9, line: Line 9, site: Ulm, criticality: critical, commissioned: 2024-02-01 }\n`;
    const before = 'refr/2024/10/01/before.jsonl';
    const row = (device: string) =>
      `{"ts":"2024-10-01T00:00:00Z","device":"${device}","metric":"temp","value":900}\n`;
    await stack.put(before, row('kiln-07'));
    await stack.waitForWarehouse([before]);
    await stack.put('reference/devices.yaml', updated, 'lake');
    const after = 'refr/2024/10/01/after.jsonl';
    await stack.put(after, row('kiln-07'));
    await stack.waitForWarehouse([after]);
    const rows = await stack.queryWarehouse(
      `SELECT source_key, model, criticality FROM readings WHERE factory = 'refr' ORDER BY source_key`,
    );
    expect(rows).toEqual([
      { source_key: after, model: 'Riedhammer RK 9', criticality: 'critical' },
      { source_key: before, model: null, criticality: null },
    ]);
    expect(await stack.queryWarehouse(`SELECT count(*) AS n FROM devices WHERE factory = 'refr'`)).toEqual([
      { n: '1' },
    ]);
  });
});

describe('the warehouse files: bases, and a delta each batch uploads', () => {
  const bucket = 'delta-test';
  const ref = async () => {
    const { bundledReference } = await import('../../functions/contracts/reference.js');
    return {
      ...bundledReference(join(import.meta.dirname, '..', '..', 'config')),
      sources: { devices: 'b', errorCodes: 'b' },
    };
  };
  /** A lake object of `n` readings (values `offset`…), as the enrich function writes them. */
  async function lakeObject(name: string, n: number, offset: number): Promise<WarehouseMessage> {
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const { readFile } = await import('node:fs/promises');
    const { sqlString } = await import('../../functions/core/duckdb.js');
    const path = join(await mkdtemp(join(stack.data, 'lake-')), 'o.parquet');
    const db = await DuckDBInstance.create(':memory:');
    const c = await db.connect();
    await c.run(`COPY (SELECT TIMESTAMPTZ '2024-03-04 00:00:00+00' + to_seconds(i) AS ts, 'delta' AS factory,
        'd' || (i % 3) AS device, 'm' AS metric, (${offset} + i)::DOUBLE AS value, 'u' AS unit,
        ${sqlString(`src/${name}`)} AS source_key, i + 1 AS source_line, '2024-03-04' AS date, 'e1' AS source_etag,
        NULL::VARCHAR AS model, NULL::VARCHAR AS line, NULL::VARCHAR AS site, NULL::VARCHAR AS criticality,
        NULL::DOUBLE AS baseline_median, NULL::DOUBLE AS baseline_mad, NULL::DOUBLE AS anomaly_score, false AS is_anomaly
      FROM range(${n}) t(i)) TO ${sqlString(path)} (FORMAT parquet)`);
    c.closeSync();
    db.closeSync();
    const key = `delta-test/${name}.parquet`;
    const eTag = await stack.put(key, await readFile(path), 'lake');
    return {
      kind: 'data',
      table: 'readings',
      bucket: 'lake',
      key,
      eTag,
      rows: n,
      sourceKey: `src/${name}`,
      sourceETag: 'e1',
      rawCreatedAt: new Date().toISOString(),
      enrichedAt: new Date().toISOString(),
    };
  }
  const totals = () =>
    stack.queryWarehouse(
      `SELECT source_key, count(*) AS n, sum(value) AS v FROM readings GROUP BY 1 ORDER BY 1`,
      bucket,
    );
  const baseKey = async () =>
    String((await stack.queryWarehouse('SELECT base_key FROM warehouse_meta', bucket))[0]?.base_key);
  const bases = async () => {
    const { listKeys } = await import('../../functions/core/s3.js');
    return (await listKeys(bucket, 'bases/')).sort();
  };
  /** A base file on its own: the warehouse as of the compaction that wrote it. */
  const baseAlone = async (key: string, sql: string) => {
    const { downloadIfChanged } = await import('../../functions/core/s3.js');
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const path = join(await mkdtemp(join(stack.data, 'base-')), 'base.duckdb');
    await downloadIfChanged(bucket, key, path, undefined);
    const db = await DuckDBInstance.create(path, { access_mode: 'READ_ONLY' });
    try {
      return (await (await db.connect()).runAndReadAll(sql)).getRowObjectsJson();
    } finally {
      db.closeSync();
    }
  };
  const writer = async (options: Record<string, unknown> = {}) => {
    const { WarehouseFiles } = await import('../../functions/warehouse/warehouse-file.js');
    const dir = await mkdtemp(join(stack.data, 'writer-'));
    return {
      files: new WarehouseFiles(bucket, dir),
      warehouseBucket: bucket,
      tmpDir: dir,
      baselineDays: 7,
      reference: ref,
      ...options,
    };
  };
  const always = { minBytes: 0, baseFraction: 0 };

  it('a batch uploads only the delta; base rows replaced stay gone across compactions', async () => {
    const { loadBatch } = await import('../../functions/warehouse/load-batch.js');
    await stack.runtime.s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const deps = await writer();
    // a → a base of its own (generation 1); b → the delta only.
    expect(await loadBatch([await lakeObject('a', 100, 0)], { ...deps, compaction: always })).toMatchObject({
      compaction: 'done',
      generation: 0,
    });
    const first = await baseKey();
    expect(first).toMatch(/^bases\/telemetry-000001-/);
    const stored = await bases();
    expect(await loadBatch([await lakeObject('b', 50, 1000)], deps)).toMatchObject({
      objects: 1,
      compaction: 'none',
      generation: 1,
    });
    // A new version of a's lake object replaces a's rows, which are in the base (10 rows, 500…509).
    await loadBatch([await lakeObject('a', 10, 500)], deps);
    const expected = [
      { source_key: 'src/a', n: '10', v: 5045 },
      { source_key: 'src/b', n: '50', v: 51225 },
    ];
    expect(await totals()).toEqual(expected);
    expect([await bases(), await baseKey()]).toEqual([stored, first]);
    expect(await baseAlone(first, 'SELECT count(*) AS n FROM readings')).toEqual([{ n: '100' }]);
    // Folded: the same rows from a new base, the ledger has each object once, and only the newest two
    // bases are kept.
    expect(await loadBatch([await lakeObject('c', 5, 0)], { ...deps, compaction: always })).toMatchObject({
      compaction: 'done',
      generation: 1,
    });
    expect(await totals()).toEqual([...expected, { source_key: 'src/c', n: '5', v: 10 }]);
    const second = await baseKey();
    expect(await bases()).toEqual([first, second]);
    expect(
      await baseAlone(second, 'SELECT count(*) AS n, max(generation) AS g FROM readings, warehouse_meta'),
    ).toEqual([{ n: '65', g: '2' }]);
    expect(
      await stack.queryWarehouse('SELECT lake_key, count(*) AS n FROM ledger GROUP BY 1 ORDER BY 1', bucket),
    ).toEqual(['a', 'b', 'c'].map((x) => ({ lake_key: `delta-test/${x}.parquet`, n: '1' })));
  });

  it('a delta past its size folds into a level-1 file: commits stay small, the base untouched', async () => {
    const { loadBatch } = await import('../../functions/warehouse/load-batch.js');
    const { listKeys } = await import('../../functions/core/s3.js');
    const l1Files = async () => (await listKeys(bucket, 'l1/')).sort();
    const l1Key = async () =>
      (await stack.queryWarehouse('SELECT l1_key FROM warehouse_meta', bucket))[0]?.l1_key as string | null;
    const deps = await writer();
    // Every batch folds its delta into a new level-1 file; no base is due.
    const l1Always = { minBytes: Number.MAX_SAFE_INTEGER, baseFraction: 1, deltaMaxBytes: 0 };
    const base = await baseKey();
    const before = await totals();
    const sum = (rows: Record<string, unknown>[]) => rows.reduce((n, r) => n + Number(r.n), 0);
    expect(
      await loadBatch([await lakeObject('0k1', 40, 0)], { ...deps, compaction: l1Always }),
    ).toMatchObject({
      compaction: 'done',
    });
    const first = await l1Key();
    expect(first).toMatch(/^l1\/telemetry-/);
    expect(
      await loadBatch([await lakeObject('0k2', 30, 0)], { ...deps, compaction: l1Always }),
    ).toMatchObject({
      compaction: 'done',
    });
    const second = await l1Key();
    expect(second).not.toBe(first);
    // The previous level-1 file is kept for readers that still hold it; older ones go.
    expect(await l1Files()).toEqual([first, second].sort());
    // A new version of k1's object: its rows, now in the level-1 file, are replaced (removed by rowid).
    expect(
      await loadBatch([await lakeObject('0k1', 5, 100)], { ...deps, compaction: l1Always }),
    ).toMatchObject({
      compaction: 'done',
    });
    const rows = await totals();
    expect(rows.filter((r) => String(r.source_key).startsWith('src/0k'))).toEqual([
      { source_key: 'src/0k1', n: '5', v: 510 },
      { source_key: 'src/0k2', n: '30', v: 435 },
    ]);
    expect(sum(rows)).toBe(sum(before) + 35);
    expect(await baseKey()).toBe(base);
    // A batch that only adds to the delta reads through all three files.
    await loadBatch([await lakeObject('0k3', 2, 0)], deps);
    expect(sum(await totals())).toBe(sum(before) + 37);
    // The base compaction folds the level-1 file and the delta into a new base; no level-1 file is left.
    expect(await loadBatch([await lakeObject('0k4', 1, 0)], { ...deps, compaction: always })).toMatchObject({
      compaction: 'done',
    });
    expect(await baseKey()).not.toBe(base);
    expect(await l1Key()).toBeNull();
    expect((await totals()).filter((r) => String(r.source_key).startsWith('src/0k'))).toEqual([
      { source_key: 'src/0k1', n: '5', v: 510 },
      { source_key: 'src/0k2', n: '30', v: 435 },
      { source_key: 'src/0k3', n: '2', v: 1 },
      { source_key: 'src/0k4', n: '1', v: 0 },
    ]);
    expect(await l1Files()).toHaveLength(1); // the one the previous delta named, for readers holding it
    expect(
      await stack.queryWarehouse(
        `SELECT count(*) AS n, count(DISTINCT lake_key) AS k FROM ledger WHERE lake_key LIKE 'delta-test/0k%'`,
        bucket,
      ),
    ).toEqual([{ n: '4', k: '4' }]);
  });

  it('a warehouse from before the delta: its single file becomes the first base, as is', async () => {
    const { loadBatch } = await import('../../functions/warehouse/load-batch.js');
    const { TABLES, VIEWS } = await import('../../functions/warehouse/schema.js');
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const { readFile } = await import('node:fs/promises');
    const legacy = 'legacy-test';
    await stack.runtime.s3.send(new CreateBucketCommand({ Bucket: legacy }));
    const path = join(await mkdtemp(join(stack.data, 'legacy-')), 'telemetry.duckdb');
    const db = await DuckDBInstance.create(path);
    const c = await db.connect();
    for (const ddl of [...TABLES, ...VIEWS]) await c.run(ddl);
    await c.run(`INSERT INTO readings (ts, factory, device, metric, value, source_key, lake_key)
      VALUES (TIMESTAMPTZ '2024-03-01 00:00:00+00', 'old', 'd', 'm', 7, 'src/old', 'old.parquet')`);
    c.closeSync();
    db.closeSync();
    const original = await stack.put('telemetry.duckdb', await readFile(path), legacy);
    const deps = {
      ...(await writer()),
      files: new (await import('../../functions/warehouse/warehouse-file.js')).WarehouseFiles(
        legacy,
        await mkdtemp(join(stack.data, 'legacy-w-')),
      ),
      warehouseBucket: legacy,
    };
    await loadBatch([await lakeObject('l1', 2, 0)], deps);
    const rows = () =>
      stack.queryWarehouse('SELECT source_key, count(*) AS n FROM readings GROUP BY 1 ORDER BY 1', legacy);
    const both = [
      { source_key: 'src/l1', n: '2' },
      { source_key: 'src/old', n: '1' },
    ];
    expect(await rows()).toEqual(both);
    expect(await stack.queryWarehouse('SELECT base_key FROM warehouse_meta', legacy)).toEqual([
      { base_key: 'telemetry.duckdb' },
    ]);
    // Folded into a base of the new kind; the old file is left as it was.
    await loadBatch([await lakeObject('l2', 1, 0)], { ...deps, compaction: always });
    expect(await rows()).toEqual([...both.slice(0, 1), { source_key: 'src/l2', n: '1' }, both[1]]);
    const { headObject } = await import('../../functions/core/s3.js');
    expect((await headObject(legacy, 'telemetry.duckdb'))?.eTag).toBe(original);
  });

  it('the embedded S3 honours conditional writes, as S3 does', async () => {
    const { PutObjectCommand } = await import('@aws-sdk/client-s3');
    const put = (Body: string, cond: { IfMatch?: string; IfNoneMatch?: string }) =>
      stack.runtime.s3.send(new PutObjectCommand({ Bucket: 'lake', Key: 'cond/x', Body, ...cond })).then(
        (r) => r.ETag!,
        (err: { $metadata?: { httpStatusCode?: number } }) => err.$metadata?.httpStatusCode,
      );
    const first = await put('1', { IfNoneMatch: '*' });
    expect(first).toMatch(/^"/);
    expect(await put('2', { IfNoneMatch: '*' })).toBe(412);
    expect(await put('2', { IfMatch: '"0123"' })).toBe(412);
    expect(
      await stack.runtime.s3
        .send(
          new PutObjectCommand({ Bucket: 'lake', Key: 'cond/missing', Body: '1', IfMatch: String(first) }),
        )
        .catch((err: { $metadata?: { httpStatusCode?: number } }) => err.$metadata?.httpStatusCode),
    ).toBe(404);
    const second = await put('2', { IfMatch: String(first) });
    expect(second).toMatch(/^"/);
    // Two racing writes on the same ETag: exactly one succeeds.
    const racing = await Promise.all([
      put('3', { IfMatch: String(second) }),
      put('4', { IfMatch: String(second) }),
    ]);
    expect(racing.filter((r) => r === 412)).toHaveLength(1);
  });

  it('overlapping writers: a batch overtaken is redone on the new delta, a compaction overtaken is dropped', async () => {
    const { loadBatch } = await import('../../functions/warehouse/load-batch.js');
    const [a, b] = [await writer(), await writer()];
    const before = await totals();
    // B commits while A is between loading and committing: A's upload is refused and A starts again.
    let overtake = true;
    const d = await lakeObject('d', 20, 0);
    const e = await lakeObject('e', 30, 0);
    const first = await loadBatch([d], {
      ...a,
      commit: async (file, eTag) => {
        if (overtake) {
          overtake = false;
          await loadBatch([e], b);
        }
        return file.commit(eTag);
      },
    });
    expect(first).toMatchObject({ objects: 1, attempts: 2 });
    const de = [
      ...before,
      { source_key: 'src/d', n: '20', v: 190 },
      { source_key: 'src/e', n: '30', v: 435 },
    ];
    expect(await totals()).toEqual(de);

    // B commits while A compacts (A's batch is committed, its new base uploaded, the switch to it not
    // yet): A's switch is refused, the new base is abandoned, nothing is lost or doubled.
    const key = await baseKey();
    let commits = 0;
    const f = await lakeObject('f', 4, 0);
    const g = await lakeObject('g', 6, 0);
    const compacting = await loadBatch([f], {
      ...a,
      compaction: always,
      commit: async (file, eTag) => {
        if (++commits === 2) await loadBatch([g], b);
        return file.commit(eTag);
      },
    });
    expect(compacting).toMatchObject({ objects: 1, compaction: 'failed' });
    const all = [...de, { source_key: 'src/f', n: '4', v: 6 }, { source_key: 'src/g', n: '6', v: 15 }];
    expect(await totals()).toEqual(all);
    expect(await baseKey()).toBe(key);
    expect(await bases()).toHaveLength(3); // the two kept, and the abandoned one
    // A compaction stopped before the switch changes nothing; the next one succeeds.
    await expect(
      loadBatch([await lakeObject('h', 1, 0)], {
        ...b,
        compaction: always,
        commit: async (file, eTag) => {
          if (++commits === 4) throw new Error('killed before the switch');
          return file.commit(eTag);
        },
      }),
    ).resolves.toMatchObject({ objects: 1, compaction: 'failed' });
    expect(await baseKey()).toBe(key);
    expect(await loadBatch([await lakeObject('i', 1, 0)], { ...a, compaction: always })).toMatchObject({
      compaction: 'done',
    });
    // After a switch, the new base and the previous one (readers may hold it) are kept, and the
    // abandoned ones go: another writer's base, not committed yet, could no longer be (the delta it
    // folded has changed since).
    const third = await baseKey();
    expect(await bases()).toEqual([key, third].sort());
    await loadBatch([await lakeObject('j', 1, 0)], { ...a, compaction: always });
    expect(await bases()).toEqual([third, await baseKey()].sort());
    expect(await totals()).toEqual([
      ...all,
      ...['h', 'i', 'j'].map((x) => ({ source_key: `src/${x}`, n: '1', v: 0 })),
    ]);
  });
});
