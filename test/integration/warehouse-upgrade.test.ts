import { mkdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { WarehouseMessage } from '../../functions/contracts/messages.js';
import type { CanonicalTable, Column } from '../../functions/contracts/tables.js';
import { type ScratchS3, startScratchS3 } from '../helpers/scratch-s3.js';

/**
 * Schema evolution of the warehouse (docs/architecture.md, "Warehouse files"): a warehouse written by
 * the previous release — test/fixtures/warehouse-previous, a delta and the base it names, made by that
 * release's own ETL, enrichment and writer (see its README.md) — is upgraded in place by this one: its
 * tables gain the columns declared since in functions/contracts/tables.ts, its rows read NULL there, and
 * Parquet of both releases loads. Then the same for a single-file warehouse of the releases before the
 * delta, and, without S3, a column that no release declares yet.
 */

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'warehouse-previous');
interface Fixture {
  commit: string;
  base: { generation: number; baseKey: string };
  counts: Record<string, number>;
  removed: Record<string, number>;
  /** Enriched by the previous release and not loaded yet: in the warehouse queue at the deployment. */
  pending: WarehouseMessage[];
  lakeKeys: string[];
}
const fixture = JSON.parse(readFileSync(join(FIXTURE, 'fixture.json'), 'utf8')) as Fixture;
const DELTA = 'telemetry-delta.duckdb';
const always = { minBytes: 0, baseFraction: 0 };

let root: string;
let s3: ScratchS3;
let client: S3Client;
let local: DuckDBConnection;
// The functions read their configuration once, at import: loaded after the environment is set.
let tables: typeof import('../../functions/contracts/tables.js');
let loadBatch: typeof import('../../functions/warehouse/load-batch.js').loadBatch;
let WarehouseFiles: typeof import('../../functions/warehouse/warehouse-file.js').WarehouseFiles;
let WarehouseReader: typeof import('../../functions/warehouse/query.js').WarehouseReader;
let delta: typeof import('../../functions/warehouse/delta.js');
let schema: typeof import('../../functions/warehouse/schema.js');
let logger: typeof import('../../functions/core/logger.js').logger;
let sqlString: typeof import('../../functions/core/duckdb.js').sqlString;
let manifestSchema: typeof import('../../functions/contracts/manifest.js').manifestSchema;
let bundledReference: typeof import('../../functions/contracts/reference.js').bundledReference;

beforeAll(async () => {
  s3 = await startScratchS3('warehouse-upgrade', ['lake', 'warehouse', 'legacy']);
  ({ root, client } = s3);
  tables = await import('../../functions/contracts/tables.js');
  ({ loadBatch } = await import('../../functions/warehouse/load-batch.js'));
  ({ WarehouseFiles } = await import('../../functions/warehouse/warehouse-file.js'));
  ({ WarehouseReader } = await import('../../functions/warehouse/query.js'));
  delta = await import('../../functions/warehouse/delta.js');
  schema = await import('../../functions/warehouse/schema.js');
  ({ logger } = await import('../../functions/core/logger.js'));
  ({ sqlString } = await import('../../functions/core/duckdb.js'));
  ({ manifestSchema } = await import('../../functions/contracts/manifest.js'));
  ({ bundledReference } = await import('../../functions/contracts/reference.js'));
  const { connectUtc } = await import('../../functions/core/duckdb.js');
  local = await connectUtc(await DuckDBInstance.create(':memory:'));
  // The pending messages' lake objects, as the previous release left them.
  for (const key of fixture.lakeKeys) await put('lake', key, await readFile(join(FIXTURE, 'lake', key)));
});

afterAll(async () => {
  local?.closeSync();
  await s3?.stop();
});

async function put(bucket: string, key: string, body: Buffer | string): Promise<string> {
  const res = await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  return res.ETag!.replace(/"/g, '');
}

async function eTagOf(bucket: string, key: string): Promise<string> {
  return (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ETag!.replace(/"/g, '');
}

/** A fixture file of the previous release's warehouse, uncompressed. */
function fixtureFile(key: string): Buffer {
  return gunzipSync(readFileSync(join(FIXTURE, 'warehouse', `${key}.gz`)));
}

const names = (columns: readonly Column[]) => columns.map((c) => c.name);

/** Rows as the query API returns them (JSON-safe), from a local DuckDB file opened read-only. */
async function rowsOf(path: string, sql: string, attach?: string): Promise<Record<string, unknown>[]> {
  const { connectUtc } = await import('../../functions/core/duckdb.js');
  const instance = await DuckDBInstance.create(path, { access_mode: 'READ_ONLY' });
  const c = await connectUtc(instance);
  try {
    if (attach) await c.run(`ATTACH ${sqlString(attach)} AS base (READ_ONLY)`);
    return (await c.runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[];
  } finally {
    c.closeSync();
    instance.closeSync();
  }
}

/** The previous release's warehouse as its own readers saw it: its delta's views over its base. */
async function previously(sql: string): Promise<Record<string, unknown>[]> {
  const dir = await mkdtemp(join(root, 'previous-'));
  await writeFile(join(dir, 'delta.duckdb'), fixtureFile(DELTA));
  await writeFile(join(dir, 'base.duckdb'), fixtureFile(fixture.base.baseKey));
  try {
    return await rowsOf(join(dir, 'delta.duckdb'), sql, join(dir, 'base.duckdb'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A reader of the warehouse in `bucket` (the query API's), on fresh copies. */
async function query(sql: string, bucket = 'warehouse') {
  const dir = await mkdtemp(join(root, 'reader-'));
  try {
    const result = await new WarehouseReader(bucket, dir).query(sql);
    if (!result) throw new Error(`s3://${bucket}: no warehouse`);
    return result;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const NEW_DAY = '2024-03-07';

/**
 * Parquet as this release's enrichment writes it: the table's columns up to the `enriched` stage, in
 * declared order and types (selectList), with the columns declared in this release filled. A column
 * declared later and not named here is written NULL, so the test keeps to the declaration.
 */
async function newParquet(
  table: CanonicalTable,
  stage: 'normalized' | 'enriched',
  rows: number,
  values: Record<string, string>,
): Promise<Buffer> {
  const columns = tables.columnsAt(table, stage);
  const expressions = Object.fromEntries(columns.map((c) => [c.name, values[c.name] ?? 'NULL']));
  const path = join(root, `${table}-${Math.random().toString(16).slice(2)}.parquet`);
  await local.run(
    `COPY (SELECT ${tables.selectList(table, columns, expressions)} FROM range(${rows}) t(i))
     TO ${sqlString(path)} (FORMAT parquet)`,
  );
  return readFile(path);
}

/** Uploads new-format enriched objects of one raw file: its readings or events. */
async function newData(table: 'readings' | 'events', name: string, rows: number): Promise<WarehouseMessage> {
  const sourceKey = `demo/2024/03/07/${name}`;
  const common = {
    factory: `'demo'`,
    device: `'press-01'`,
    source_key: sqlString(sourceKey),
    source_line: 'i + 1',
    date: `'${NEW_DAY}'`,
    source_etag: `'etag-${name}'`,
    model: `'P-100'`,
    line: `'L1'`,
    site: `'Augsburg'`,
    criticality: `'high'`,
    ts: `TIMESTAMPTZ '${NEW_DAY} 08:00:00+00' + to_minutes(i)`,
  };
  const body =
    table === 'readings'
      ? await newParquet('readings', 'enriched', rows, {
          ...common,
          metric: `'temperature'`,
          value: '20 + i',
          unit: `'C'`,
          baseline_median: '20',
          baseline_mad: '1',
          anomaly_score: '0',
          is_anomaly: 'false',
          attributes: `json_object('batch', 'B' || i)`,
        })
      : await newParquet('events', 'enriched', rows, {
          ...common,
          severity: '4',
          severity_name: `'warning'`,
          code: `'W4001'`,
          component: `'plc'`,
          message: `'conveyor belt slip detected ' || i`,
          attributes: `json_object('line', 'A')`,
          category: `'conveyor'`,
          code_description: `'belt slip'`,
          recommended_action: `'check the belt'`,
          code_severity: '4',
          effective_severity: '4',
          severity_score: '60',
          severity_raw: `'W'`,
          source_lines: '1 + i % 3',
        });
  const key = `enriched/${table}/factory=demo/date=${NEW_DAY}/${name}.parquet`;
  return {
    kind: 'data',
    table,
    bucket: 'lake',
    key,
    eTag: await put('lake', key, body),
    rows,
    sourceKey,
    sourceETag: `etag-${name}`,
    rawCreatedAt: `${NEW_DAY}T08:00:00.000Z`,
    enrichedAt: `${NEW_DAY}T08:00:01.000Z`,
  };
}

/** A new-format manifest with rejects (they have `source_lines` now). */
async function newManifest(name: string, rejected: number): Promise<WarehouseMessage> {
  const sourceKey = `demo/2024/03/07/${name}`;
  const rejectsKey = `quarantine/rejects/factory=demo/${name}.parquet`;
  await put(
    'lake',
    rejectsKey,
    await newParquet('rejects', 'normalized', rejected, {
      source_key: sqlString(sourceKey),
      source_line: '10 * (i + 1)',
      raw: `'{"truncated": '`,
      reason: `'not JSON'`,
      factory: `'demo'`,
      source_lines: '2',
    }),
  );
  const manifest = manifestSchema.parse({
    id: name,
    status: 'loaded',
    source: {
      bucket: 'raw',
      key: sourceKey,
      eTag: `etag-${name}`,
      size: 100,
      createdAt: `${NEW_DAY}T08:00:00.000Z`,
    },
    factory: 'demo',
    format: 'jsonl',
    table: 'readings',
    gzip: false,
    lines: { total: 3 + rejected, loaded: 3, rejected, blank: 0, header: 0 },
    rows: { readings: 3, events: 0 },
    rejectReasons: { 'not JSON': rejected },
    outputs: [`enriched/readings/factory=demo/date=${NEW_DAY}/${name}.parquet`, rejectsKey],
    bytes: 100,
    seconds: 0.01,
    startedAt: `${NEW_DAY}T08:00:00.000Z`,
    finishedAt: `${NEW_DAY}T08:00:00.010Z`,
  });
  const key = `manifests/factory=demo/${name}.json`;
  return { kind: 'manifest', bucket: 'lake', key, eTag: await put('lake', key, JSON.stringify(manifest)) };
}

function writer(bucket: string) {
  // The writer's folder in /tmp, as the warehouse function makes it at start-up.
  mkdirSync(join(root, `writer-${bucket}`), { recursive: true });
  const reference = { ...bundledReference(join(import.meta.dirname, '..', '..', 'config')) };
  return {
    files: new WarehouseFiles(bucket, join(root, `writer-${bucket}`)),
    warehouseBucket: bucket,
    tmpDir: join(root, 'tmp'),
    baselineDays: 7,
    reference: async () => ({ ...reference, sources: { devices: 'bundled', errorCodes: 'bundled' } }),
  };
}

/** Whether a batch migrated anything (the one log line `addMissingColumns` writes when it does). */
function migrations(spy: { mock: { calls: unknown[][] } }): unknown[] {
  return spy.mock.calls.filter((call) => call[1] === 'warehouse tables gained their declared columns');
}

/** The columns that identify a row of a canonical table: the order to compare rows in. */
const ORDER: Record<CanonicalTable, string> = {
  readings: 'lake_key, source_line, metric',
  events: 'lake_key, source_line',
  rejects: 'lake_key, source_line',
};

describe('a warehouse from the previous release upgrades in place', () => {
  let files: ReturnType<typeof writer>;
  const before: Partial<Record<CanonicalTable, Record<string, unknown>[]>> = {};

  it('the fixture is the previous release’s: its tables lack the columns declared since', async () => {
    for (const [key, body] of [
      [DELTA, fixtureFile(DELTA)],
      [fixture.base.baseKey, fixtureFile(fixture.base.baseKey)],
    ] as const) {
      await put('warehouse', key, body);
    }
    for (const t of schema.CANONICAL_TABLES) {
      before[t] = await previously(`SELECT * FROM ${t} ORDER BY ${ORDER[t]}`);
      expect(before[t]!.length).toBe(fixture.counts[t]);
    }
    const declared = (t: CanonicalTable) => names(tables.TABLES[t]);
    const old = (t: CanonicalTable) => Object.keys(before[t]![0]!);
    // What this release declared at the end of each table, and what the previous one had.
    expect(declared('readings')).toEqual([...old('readings'), 'attributes']);
    expect(declared('events')).toEqual([...old('events'), 'severity_raw', 'source_lines']);
    expect(declared('rejects')).toEqual([...old('rejects'), 'source_lines']);
    // Its delta removes base rows (a raw file's newer version replaced the older one's): the views'
    // anti-join must still apply after the upgrade.
    expect(fixture.removed.readings).toBeGreaterThan(0);
    // Enriched by it and not loaded yet: readings, events, and manifests with rejects.
    expect(new Set(fixture.pending.map((m) => (m.kind === 'data' ? m.table : m.kind)))).toEqual(
      new Set(['readings', 'events', 'manifest']),
    );
  });

  it('a batch of this release loads both releases’ Parquet, and the old rows read NULL in the new columns', async () => {
    files = writer('warehouse');
    const spy = vi.spyOn(logger, 'info');
    const baseETag = await eTagOf('warehouse', fixture.base.baseKey);
    const stats = await loadBatch(
      [
        ...fixture.pending,
        await newData('readings', 'sensors-new.jsonl', 5),
        await newData('events', 'gateway-new.syslog', 4),
        await newManifest('sensors-new.jsonl', 2),
      ],
      files,
    );
    expect(stats).toMatchObject({ compaction: 'none', generation: fixture.base.generation, skipped: 0 });
    expect(migrations(spy)).toHaveLength(1);
    spy.mockRestore();
    // Upgraded in place: the delta still names the same base, which nobody changed.
    expect((await query('SELECT generation, base_key FROM warehouse_meta')).rows).toEqual([
      { generation: String(fixture.base.generation), base_key: fixture.base.baseKey },
    ]);
    expect(await eTagOf('warehouse', fixture.base.baseKey)).toBe(baseETag);

    for (const t of schema.CANONICAL_TABLES) {
      const rows = before[t]!;
      const oldColumns = Object.keys(rows[0]!);
      const added = names(tables.TABLES[t]).filter((n) => !oldColumns.includes(n));
      const keys = [...new Set(rows.map((r) => String(r.lake_key)))].map((k) => sqlString(k)).join(', ');
      const after = await query(`SELECT * FROM ${t} WHERE lake_key IN (${keys}) ORDER BY ${ORDER[t]}`);
      // Every old row, none of those the previous release had removed, with its values as they were…
      expect(after.rows.map((r) => Object.fromEntries(oldColumns.map((n) => [n, r[n]])))).toEqual(rows);
      // … and NULL in the columns declared since.
      for (const n of added) expect(after.rows.filter((r) => r[n] !== null)).toEqual([]);
    }

    // The previous release's pending Parquet (no attributes, severity_raw, source_lines) loaded.
    const pendingData = fixture.pending.filter((m) => m.kind === 'data');
    for (const m of pendingData) {
      const [row] = (
        await query(
          m.table === 'readings'
            ? `SELECT count(*) AS n, count(attributes) AS filled FROM readings WHERE lake_key = ${sqlString(m.key)}`
            : `SELECT count(*) AS n, count(severity_raw) + count(source_lines) AS filled FROM events WHERE lake_key = ${sqlString(m.key)}`,
        )
      ).rows;
      expect(row).toEqual({ n: String(m.rows), filled: '0' });
    }
    const pendingRejects = fixture.lakeKeys.filter((k) => k.startsWith('quarantine/rejects/'));
    expect(
      (
        await query(
          `SELECT count(*) > 0 AS some, count(source_lines) AS filled FROM rejects WHERE lake_key IN (${pendingRejects.map((k) => sqlString(k)).join(', ')})`,
        )
      ).rows,
    ).toEqual([{ some: true, filled: '0' }]);

    // The new rows have their values.
    expect(
      (
        await query(
          `SELECT CAST(attributes AS VARCHAR) AS a FROM readings WHERE source_key = 'demo/2024/03/07/sensors-new.jsonl' ORDER BY source_line`,
        )
      ).rows.map((r) => JSON.parse(String(r.a))),
    ).toEqual([0, 1, 2, 3, 4].map((i) => ({ batch: `B${i}` })));
    expect(
      (
        await query(
          `SELECT severity_raw, source_lines FROM events WHERE source_key = 'demo/2024/03/07/gateway-new.syslog' ORDER BY source_line`,
        )
      ).rows,
    ).toEqual([1, 2, 3, 1].map((n) => ({ severity_raw: 'W', source_lines: n })));
    expect(
      (
        await query(
          `SELECT source_line, source_lines, source_etag FROM rejects WHERE source_key = 'demo/2024/03/07/sensors-new.jsonl' ORDER BY 1`,
        )
      ).rows,
    ).toEqual(
      [10, 20].map((n) => ({
        source_line: String(n),
        source_lines: 2,
        source_etag: 'etag-sensors-new.jsonl',
      })),
    );

    // Totals: the previous release's rows, its pending objects' and the new ones.
    const counts = (
      await query(
        'SELECT (SELECT count(*) FROM readings) AS r, (SELECT count(*) FROM events) AS e, (SELECT count(*) FROM manifests) AS m',
      )
    ).rows[0]!;
    const pendingRows = (table: string) =>
      pendingData
        .filter((m) => m.kind === 'data' && m.table === table)
        .reduce((n, m) => n + (m.kind === 'data' ? m.rows : 0), 0);
    expect(counts).toEqual({
      r: String(fixture.counts.readings! + pendingRows('readings') + 5),
      e: String(fixture.counts.events! + pendingRows('events') + 4),
      m: String(fixture.counts.manifests! + 3),
    });
  });

  it('SELECT * through the query reader shows the declared columns in declared order', async () => {
    for (const t of schema.CANONICAL_TABLES) {
      const { columns } = await query(`SELECT * FROM ${t} LIMIT 1`);
      expect(columns).toEqual(names(tables.TABLES[t]));
      // And their declared types, as DuckDB spells them (TIMESTAMPTZ is TIMESTAMP WITH TIME ZONE).
      const described = await query(`DESCRIBE ${t}`);
      const spelled = async (type: string) =>
        String((await local.runAndReadAll(`SELECT typeof(CAST(NULL AS ${type}))`)).getRows()[0]![0]);
      const declared = [];
      for (const c of tables.TABLES[t]) declared.push([c.name, await spelled(c.type)]);
      expect(described.rows.map((r) => [r.column_name, r.column_type])).toEqual(declared);
    }
    // The views over the tables still bind.
    const views = (
      await query(
        'SELECT (SELECT count(*) FROM device_health_hourly) AS h, (SELECT count(*) FROM pipeline_files) AS p, (SELECT count(*) FROM files) AS f',
      )
    ).rows[0]!;
    for (const n of Object.values(views)) expect(Number(n)).toBeGreaterThan(0);
  });

  it('a second batch needs no migration', async () => {
    const spy = vi.spyOn(logger, 'info');
    const stats = await loadBatch([await newData('readings', 'sensors-second.jsonl', 3)], files);
    expect(stats).toMatchObject({ objects: 1, compaction: 'none' });
    expect(migrations(spy)).toEqual([]);
    spy.mockRestore();
    expect(
      (
        await query(
          `SELECT count(attributes) AS n FROM readings WHERE source_key = 'demo/2024/03/07/sensors-second.jsonl'`,
        )
      ).rows,
    ).toEqual([{ n: '3' }]);
  });

  it('a compaction after the upgrade writes a base with every declared column, and batches go on', async () => {
    const total = async () =>
      (
        await query(
          'SELECT (SELECT count(*) FROM readings) AS r, (SELECT count(attributes) FROM readings) AS a, (SELECT count(*) FROM events) AS e, (SELECT count(source_lines) FROM events) AS s, (SELECT count(*) FROM rejects) AS j, (SELECT count(source_lines) FROM rejects) AS l',
        )
      ).rows[0]!;
    const upgraded = await total();
    const fold = vi.spyOn(logger, 'info');
    const stats = await loadBatch([await newData('events', 'gateway-fold.syslog', 2)], {
      ...files,
      compaction: always,
    });
    expect(stats.compaction).toBe('done');
    // The compaction, and only it, added to the new base what the previous release's base lacked.
    const lacked = schema.CANONICAL_TABLES.flatMap((t) =>
      names(tables.TABLES[t])
        .filter((n) => !Object.keys(before[t]![0]!).includes(n))
        .map((n) => `main.${t}.${n}`),
    );
    expect(migrations(fold)).toEqual([
      [{ columns: lacked }, 'warehouse tables gained their declared columns'],
    ]);
    fold.mockRestore();
    const [meta] = (await query('SELECT generation, base_key FROM warehouse_meta')).rows;
    expect(meta!.generation).toBe(String(fixture.base.generation + 1));
    const folded = await total();
    expect(folded).toEqual({
      ...upgraded,
      e: String(Number(upgraded.e) + 2),
      s: String(Number(upgraded.s) + 2),
    });

    // The new base, on its own: every declared column, the old rows NULL in the new ones.
    const path = join(root, 'new-base.duckdb');
    const { downloadToFile } = await import('../../functions/core/s3.js');
    await downloadToFile('warehouse', String(meta!.base_key), path);
    for (const t of schema.CANONICAL_TABLES) {
      const columns = await rowsOf(
        path,
        `SELECT column_name AS name, data_type AS type FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = '${t}' ORDER BY column_index`,
      );
      expect(columns.map((c) => c.name)).toEqual(names(tables.TABLES[t]));
    }
    expect((await rowsOf(path, 'SELECT count(*) AS r, count(attributes) AS a FROM readings'))[0]).toEqual({
      r: folded.r,
      a: folded.a,
    });
    expect((await rowsOf(path, 'SELECT count(*) AS j, count(source_lines) AS l FROM rejects'))[0]).toEqual({
      j: folded.j,
      l: folded.l,
    });

    // A batch on the new base: no migration, the columns as declared.
    const spy = vi.spyOn(logger, 'info');
    const next = await loadBatch(
      // With a message loaded before: the ledger still skips it.
      [await newData('readings', 'sensors-after.jsonl', 2), fixture.pending.find((m) => m.kind === 'data')!],
      files,
    );
    expect(next).toMatchObject({
      objects: 1,
      skipped: 1,
      compaction: 'none',
      generation: fixture.base.generation + 1,
    });
    expect(migrations(spy)).toEqual([]);
    spy.mockRestore();
    expect((await query('SELECT * FROM readings LIMIT 0')).columns).toEqual(names(tables.TABLES.readings));
    expect((await total()).a).toBe(String(Number(folded.a) + 2));
  });
});

describe('a single-file warehouse of the releases before the delta', () => {
  it('is adopted as the first base and gains the new columns', async () => {
    // That release's file had the same tables and views as the previous release's base, and no
    // warehouse_meta (the schema did not change between them): the fixture's base without it.
    const path = join(root, 'legacy', 'telemetry.duckdb');
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, fixtureFile(fixture.base.baseKey));
    const instance = await DuckDBInstance.create(path);
    const c = await instance.connect();
    await c.run('DROP TABLE warehouse_meta');
    const [[old]] = (await c.runAndReadAll('SELECT count(*) FROM readings')).getRows() as [[bigint]];
    c.closeSync();
    instance.closeSync();
    const original = await put('legacy', 'telemetry.duckdb', await readFile(path));
    const files = writer('legacy');

    await loadBatch([await newData('readings', 'legacy-new.jsonl', 3)], files);
    const counts = async () =>
      (await query('SELECT count(*) AS n, count(attributes) AS a FROM readings', 'legacy')).rows[0];
    expect(await counts()).toEqual({ n: String(Number(old) + 3), a: '3' });
    expect((await query('SELECT * FROM events LIMIT 0', 'legacy')).columns).toEqual(
      names(tables.TABLES.events),
    );
    expect((await query('SELECT base_key FROM warehouse_meta', 'legacy')).rows).toEqual([
      { base_key: 'telemetry.duckdb' },
    ]);

    // Folded into a base of the new kind with every declared column; the old file is left as it was.
    await loadBatch([await newData('events', 'legacy-fold.syslog', 1)], { ...files, compaction: always });
    const [meta] = (await query('SELECT base_key FROM warehouse_meta', 'legacy')).rows;
    expect(meta!.base_key).toMatch(/^bases\//);
    const base = join(root, 'legacy', 'base.duckdb');
    const { downloadToFile } = await import('../../functions/core/s3.js');
    await downloadToFile('legacy', String(meta!.base_key), base);
    for (const t of schema.CANONICAL_TABLES) {
      const columns = await rowsOf(
        base,
        `SELECT column_name AS name FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = '${t}' ORDER BY column_index`,
      );
      expect(columns.map((r) => r.name)).toEqual(names(tables.TABLES[t]));
    }
    expect(await counts()).toEqual({ n: String(Number(old) + 3), a: '3' });
    expect(await eTagOf('legacy', 'telemetry.duckdb')).toBe(original);
  });
});

describe('a column declared later needs only its declaration', () => {
  /** This release's declaration with one more column in `readings`, at `at` (the end by default). */
  function declaring(column: Column, at?: number) {
    const readings = [...tables.TABLES.readings];
    readings.splice(at ?? readings.length, 0, column);
    return { ...tables.TABLES, readings };
  }
  const firmware: Column = { name: 'firmware', type: 'VARCHAR', stage: 'enriched', doc: 'hypothetical' };

  it('missingColumns names what a table lacks, in declared order', () => {
    const declared = declaring(firmware);
    const has = new Set(names(tables.TABLES.readings).map((n) => n));
    expect(schema.missingColumns('readings', has, declared)).toEqual([firmware]);
    expect(schema.missingColumns('readings', has)).toEqual([]);
    expect(schema.missingColumns('rejects', new Set(['source_key']))[0]?.name).toBe('source_line');
  });

  it('a delta gains it, its views list it where declared, and a compaction writes it into the base', async () => {
    const dir = await mkdtemp(join(root, 'declared-'));
    const ref = { generation: 0, baseKey: 'bases/telemetry-000000-00000000.duckdb' };
    const basePath = join(dir, 'base.duckdb');
    const deltaPath = join(dir, 'delta.duckdb');
    // A base of this release, holding one reading.
    await delta.createBase(basePath, ref);
    const base = await DuckDBInstance.create(basePath);
    const b = await base.connect();
    await b.run(`INSERT INTO readings (ts, factory, device, metric, value, source_key, lake_key)
      VALUES (TIMESTAMPTZ '2024-03-01 00:00:00+00', 'f', 'd', 'm', 1, 'src/base', 'base.parquet')`);
    b.closeSync();
    base.closeSync();

    // Declared third, not at the end: the views still list it there; the files hold it at the end.
    const declared = declaring(firmware, 2);
    await delta.writeDelta(
      deltaPath,
      basePath,
      ref,
      async (c) => {
        await c.run(`INSERT INTO added.readings BY NAME SELECT TIMESTAMPTZ '2024-03-02 00:00:00+00' AS ts,
          'f' AS factory, 'd' AS device, 'm' AS metric, 2 AS value, 'src/delta' AS source_key, 'v2.1' AS firmware`);
      },
      declared,
    );
    const view = await rowsOf(deltaPath, 'SELECT * FROM readings ORDER BY ts', basePath);
    expect(Object.keys(view[0]!)).toEqual(names(declared.readings));
    expect(view.map((r) => [r.source_key, r.firmware])).toEqual([
      ['src/base', null],
      ['src/delta', 'v2.1'],
    ]);
    // A second write finds nothing to add.
    await delta.writeDelta(deltaPath, basePath, ref, async () => {}, declared);

    // Folded: the base has it (appended), the base's row NULL.
    const next = { generation: 1, baseKey: 'bases/telemetry-000001-00000000.duckdb' };
    const folded = join(dir, 'folded.duckdb');
    await copyFile(basePath, folded);
    await delta.foldDelta(folded, deltaPath, next, declared);
    expect(await rowsOf(folded, 'SELECT source_key, firmware FROM readings ORDER BY ts')).toEqual([
      { source_key: 'src/base', firmware: null },
      { source_key: 'src/delta', firmware: 'v2.1' },
    ]);
    const columns = await rowsOf(
      folded,
      `SELECT column_name AS name FROM duckdb_columns() WHERE table_name = 'readings' ORDER BY column_index`,
    );
    expect(columns.map((r) => r.name)).toEqual([...names(tables.TABLES.readings), 'firmware']);
    // The new delta of that base reads it by name as well.
    const nextDelta = join(dir, 'next-delta.duckdb');
    await delta.writeDelta(nextDelta, folded, next, async () => {}, declared);
    expect(Object.keys((await rowsOf(nextDelta, 'SELECT * FROM readings LIMIT 1', folded))[0]!)).toEqual(
      names(declared.readings),
    );
  });
});
