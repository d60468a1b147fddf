/**
 * The read API's speed over a warehouse of `rows` readings (and 2% as many events): `/api/readings`
 * and `/api/health` requests through the api function's router and its query process, timed per
 * request, beside the very same SQL with the same parameters on a plain in-process DuckDB connection
 * to the same local copies (the reference). Reported as p50/p95; nothing is asserted.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateBucketCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import type { ApiDeps } from '../functions/api/router.js';
import type { Params, RunQuery } from '../functions/api/sql.js';
import { columnsAt, selectList } from '../functions/contracts/tables.js';

export interface ApiBenchResult {
  rows: number;
  events: number;
  buildSeconds: number;
  routes: Record<string, { requests: number; p50: number; p95: number; plainP50: number; plainP95: number }>;
}

const DEVICES = 50;
const METRICS = 4;
const DAYS = 30;

/** The readings: 50 devices × 4 metrics over 30 days, in time order as files arrive; 0.1% anomalous. */
function readingsSql(n: number): string {
  const step = (DAYS * 86_400) / n;
  return `SELECT ${selectList('readings', columnsAt('readings', 'enriched'), {
    ts: `TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_microseconds(CAST(i * ${step * 1e6} AS BIGINT))`,
    factory: `'plant'`,
    device: `'dev-' || lpad(CAST(i % ${DEVICES} AS VARCHAR), 2, '0')`,
    metric: `'m' || ((i // ${DEVICES}) % ${METRICS})`,
    value: `50 + 10 * sin(i / 5000.0) + random() * 4 + CASE WHEN i % 997 = 0 THEN 40 ELSE 0 END`,
    unit: `'u'`,
    source_key: `'plant/2026/01/01/f' || (i // 100000) || '.jsonl'`,
    source_line: 'i % 100000 + 1',
    date: `'2026-01-01'`,
    attributes: 'NULL',
    source_etag: `'e'`,
    model: 'NULL',
    line: `'Line ' || (i % ${DEVICES} // 10)`,
    site: 'NULL',
    criticality: `'high'`,
    baseline_median: '52',
    baseline_mad: '1',
    anomaly_score: 'CASE WHEN i % 997 = 0 THEN 20.0 ELSE 0.5 END',
    is_anomaly: 'i % 997 = 0',
  })} FROM range(${n}) t(i)`;
}

function eventsSql(n: number): string {
  const step = (DAYS * 86_400) / n;
  return `SELECT ${selectList('events', columnsAt('events', 'enriched'), {
    ts: `TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_microseconds(CAST(i * ${step * 1e6} AS BIGINT))`,
    factory: `'plant'`,
    device: `'dev-' || lpad(CAST(i % ${DEVICES} AS VARCHAR), 2, '0')`,
    severity: 'i % 8',
    severity_name: `'x'`,
    code: `CASE WHEN i % 8 <= 4 THEN 'E' || (i % 20) END`,
    component: `'plc'`,
    message: `'event ' || i`,
    attributes: 'NULL',
    source_key: `'plant/2026/01/01/log' || (i // 10000) || '.log'`,
    source_line: 'i % 10000 + 1',
    date: `'2026-01-01'`,
    severity_raw: 'NULL',
    source_lines: '1',
    source_etag: `'e'`,
    model: 'NULL',
    line: 'NULL',
    site: 'NULL',
    criticality: `'high'`,
    category: 'NULL',
    code_description: 'NULL',
    recommended_action: 'NULL',
    code_severity: 'NULL',
    effective_severity: 'i % 8',
    severity_score: '50',
  })} FROM range(${n}) t(i)`;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export async function benchApi(opts: {
  s3: S3Client;
  tmp: string;
  rows: number;
  requests: number;
  log: (line: string) => void;
}): Promise<ApiBenchResult> {
  const { loadBatch } = await import('../functions/warehouse/load-batch.js');
  const { WarehouseFiles } = await import('../functions/warehouse/warehouse-file.js');
  const { bundledReference } = await import('../functions/contracts/reference.js');
  const { sqlString } = await import('../functions/core/duckdb.js');
  const { readBaseRef } = await import('../functions/warehouse/delta.js');
  const { BaseCopies } = await import('../functions/warehouse/warehouse-file.js');
  const { DELTA_KEY } = await import('../functions/contracts/keys.js');
  const { route } = await import('../functions/api/router.js');
  const { DashboardAssets } = await import('../functions/api/dashboard.js');
  const { SandboxedReader } = await import('../functions/warehouse/query-sandbox.js');
  const bucket = 'wh-api';
  const events = Math.round(opts.rows / 50);
  await opts.s3.send(new CreateBucketCommand({ Bucket: bucket }));

  // Build: one Parquet object per table, loaded by the warehouse writer and compacted into a base.
  const t0 = performance.now();
  const c = await (await DuckDBInstance.create(':memory:')).connect();
  const messages = [];
  for (const [table, sql] of [
    ['readings', readingsSql(opts.rows)],
    ['events', eventsSql(events)],
  ] as const) {
    const path = join(opts.tmp, `api-${table}.parquet`);
    await c.run(`COPY (${sql}) TO ${sqlString(path)} (FORMAT parquet)`);
    const key = `bench/api/${table}.parquet`;
    await opts.s3.send(new PutObjectCommand({ Bucket: 'lake', Key: key, Body: await readFile(path) }));
    const head = await opts.s3.send(new HeadObjectCommand({ Bucket: 'lake', Key: key }));
    messages.push({
      kind: 'data' as const,
      table,
      bucket: 'lake',
      key,
      eTag: head.ETag!.replace(/"/g, ''),
      rows: 0,
      sourceKey: `src-${table}`,
      sourceETag: 'e',
      rawCreatedAt: new Date().toISOString(),
      enrichedAt: new Date().toISOString(),
    });
  }
  c.closeSync();
  const ref = { ...bundledReference(join(import.meta.dirname, '..', 'config')), sources: {} };
  await loadBatch(messages, {
    files: new WarehouseFiles(bucket, join(opts.tmp, 'api-writer')),
    warehouseBucket: bucket,
    tmpDir: opts.tmp,
    baselineDays: 7,
    reference: async () => ref as never,
    compaction: { minBytes: 0, baseFraction: 0 },
  });
  const buildSeconds = (performance.now() - t0) / 1000;
  opts.log(
    `    built: ${opts.rows.toLocaleString()} readings, ${events.toLocaleString()} events in ${buildSeconds.toFixed(1)} s`,
  );

  const readerDir = join(opts.tmp, 'api-reader');
  const reader = new SandboxedReader(bucket, readerDir);
  const recorded: { sql: string; params: Params }[] = [];
  const query: RunQuery = async (sql, params = {}) => {
    recorded.push({ sql, params });
    return reader.query(sql, params);
  };
  const deps: ApiDeps = {
    token: undefined,
    requireToken: false,
    warehouse: async () => undefined,
    query,
    queues: async () => null,
    dashboard: new DashboardAssets(join(opts.tmp, 'no-dashboard')),
  };
  const day = 86_400_000;
  const start = Date.UTC(2026, 0, 1);
  const pick = (n: number, i: number) => (i * 7919) % n;
  const requests: Record<string, (i: number) => Record<string, string>> = {
    'readings, whole series (30 days)': (i) => ({
      factory: 'plant',
      device: `dev-${String(pick(DEVICES, i)).padStart(2, '0')}`,
      metric: `m${pick(METRICS, i)}`,
    }),
    'readings, one day (zoomed)': (i) => ({
      factory: 'plant',
      device: `dev-${String(pick(DEVICES, i)).padStart(2, '0')}`,
      metric: `m${pick(METRICS, i + 1)}`,
      from: new Date(start + pick(DAYS - 1, i) * day).toISOString(),
      to: new Date(start + (pick(DAYS - 1, i) + 1) * day).toISOString(),
    }),
    'health, default (48 h)': () => ({ factory: 'plant' }),
    'health, one week': (i) => ({
      factory: 'plant',
      from: new Date(start + pick(DAYS - 7, i) * day).toISOString(),
      to: new Date(start + (pick(DAYS - 7, i) + 7) * day).toISOString(),
    }),
  };
  const result: ApiBenchResult = { rows: opts.rows, events, buildSeconds, routes: {} };
  // The plain reference: the same local copies, opened in this process, no router or query process.
  const warm = async (path: string, q: Record<string, string>) =>
    route({ method: 'GET', path, query: q, headers: {} }, deps);
  await warm('/api/health', { factory: 'plant' });
  const delta = join(readerDir, DELTA_KEY);
  const base = new BaseCopies(bucket, join(readerDir, 'bases')).path((await readBaseRef(delta)).baseKey);
  const plain = await DuckDBInstance.create(delta, { access_mode: 'READ_ONLY' });
  const pc = await plain.connect();
  await pc.run("SET TimeZone = 'UTC'");
  await pc.run(`ATTACH ${sqlString(base)} AS base (READ_ONLY)`);
  try {
    for (const [name, params] of Object.entries(requests)) {
      const path = name.startsWith('readings') ? '/api/readings' : '/api/health';
      const api: number[] = [];
      const direct: number[] = [];
      opts.log(`    ${name}…`);
      for (let i = 0; i < opts.requests; i++) {
        recorded.length = 0;
        const t = performance.now();
        const res = await warm(path, params(i));
        api.push(performance.now() - t);
        if (res.statusCode !== 200) throw new Error(`${path}: ${res.statusCode} ${res.body}`);
        let ms = 0;
        for (const r of recorded.splice(0)) {
          const t1 = performance.now();
          const prepared = await pc.prepare(r.sql);
          prepared.bind(r.params as never);
          await prepared.runAndReadAll();
          ms += performance.now() - t1;
        }
        direct.push(ms);
      }
      api.sort((a, b) => a - b);
      direct.sort((a, b) => a - b);
      result.routes[name] = {
        requests: opts.requests,
        p50: quantile(api, 0.5),
        p95: quantile(api, 0.95),
        plainP50: quantile(direct, 0.5),
        plainP95: quantile(direct, 0.95),
      };
    }
  } finally {
    pc.closeSync();
    plain.closeSync();
    await reader.close();
  }
  return result;
}
