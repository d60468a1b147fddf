import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { openDuckDB, sqlString } from '../core/duckdb.js';
import { downloadToFile, getJson, uploadFile } from '../core/s3.js';
import type { WarehouseMessage } from '../core/warehouse-message.js';
import { BASELINES_KEY } from '../enrich/baselines.js';
import type { Reference } from '../enrich/reference-store.js';
import { appendReference } from '../enrich/reference-tables.js';
import { manifestSchema } from '../etl/manifest.js';
import { TABLES, VIEWS } from './schema.js';
import { WarehouseConflictError, type WarehouseFile } from './warehouse-file.js';

export interface WarehouseDeps {
  file: WarehouseFile;
  warehouseBucket: string;
  tmpDir: string;
  reference: () => Promise<Reference>;
  baselineDays: number;
  /** Uploads the working copy; injectable so tests can fail it (a crash before the upload). */
  commit?: (file: WarehouseFile, baseETag: string | undefined) => Promise<string>;
}

export interface BatchStats {
  objects: number;
  skipped: number;
  rows: Record<string, number>;
  /** Seconds from raw object creation to queryable (uploaded), per data object. */
  lagSeconds: number[];
  eTag: string;
  attempts: number;
  seconds: number;
}

async function scalar(
  c: DuckDBConnection,
  sql: string,
  values: Record<string, string> = {},
): Promise<unknown> {
  return (await c.runAndReadAll(sql, values)).getRows()[0]?.[0];
}

/** Older versions of a raw file are replaced by newer ones; a late message for an older one is stale. */
async function supersede(
  c: DuckDBConnection,
  sourceKey: string,
  sourceETag: string,
  rawCreatedAt: string,
): Promise<'stale' | 'ok'> {
  const newer = await scalar(
    c,
    `SELECT count(*) FROM ledger WHERE source_key = $k AND source_etag <> $e AND raw_created_at > CAST($t AS TIMESTAMPTZ)`,
    { k: sourceKey, e: sourceETag, t: rawCreatedAt },
  );
  if (Number(newer) > 0) return 'stale';
  const older = await scalar(c, 'SELECT count(*) FROM ledger WHERE source_key = $k AND source_etag <> $e', {
    k: sourceKey,
    e: sourceETag,
  });
  // Only in this (rare) case does the load touch existing rows: normal loads cost what the new data costs.
  if (Number(older) > 0) {
    for (const t of ['readings', 'events', 'rejects', 'ledger', 'manifests']) {
      await c.run(`DELETE FROM ${t} WHERE source_key = $k AND source_etag <> $e`, {
        k: sourceKey,
        e: sourceETag,
      });
    }
  }
  return 'ok';
}

async function refreshReference(c: DuckDBConnection, ref: Reference): Promise<void> {
  await c.run('DELETE FROM devices');
  await c.run('DELETE FROM error_codes');
  await appendReference(c, ref, { devices: 'devices', errorCodes: 'error_codes' });
}

/** Applies messages to an open warehouse; returns what was loaded. */
async function apply(
  c: DuckDBConnection,
  messages: WarehouseMessage[],
  work: string,
  stats: BatchStats,
): Promise<void> {
  await c.run('CREATE OR REPLACE TEMP TABLE touched (factory VARCHAR, device VARCHAR, metric VARCHAR)');
  for (const [i, m] of messages.entries()) {
    const existing = await scalar(c, 'SELECT etag FROM ledger WHERE lake_key = $k', { k: m.key });
    if (existing === m.eTag) {
      stats.skipped++;
      continue;
    }
    const path = join(work, `${i}.${m.kind === 'manifest' ? 'json' : 'parquet'}`);
    if (m.kind === 'data') {
      if ((await supersede(c, m.sourceKey, m.sourceETag, m.rawCreatedAt)) === 'stale') {
        stats.skipped++;
        continue;
      }
      await downloadToFile(m.bucket, m.key, path);
      // Rows of an earlier version of this lake object exist only if the ledger has it (both are
      // written in one transaction): only then is the table scanned for them.
      if (existing !== undefined) {
        await c.run(`DELETE FROM ${m.table} WHERE lake_key = $k`, { k: m.key });
        await c.run(`DELETE FROM ledger WHERE lake_key = $k`, { k: m.key });
      }
      const rows = (
        await c.run(
          `INSERT INTO ${m.table} BY NAME SELECT *, $k AS lake_key FROM read_parquet(${sqlString(path)})`,
          { k: m.key },
        )
      ).rowsChanged;
      if (m.table === 'readings') {
        await c.run(
          `INSERT INTO touched SELECT DISTINCT factory, device, metric FROM read_parquet(${sqlString(path)})`,
        );
      }
      await c.run(
        `INSERT INTO ledger VALUES ($k, $e, $kind, $sk, $se, CAST($created AS TIMESTAMPTZ), ${rows}, CAST($enriched AS TIMESTAMPTZ), now())`,
        {
          k: m.key,
          e: m.eTag,
          kind: m.table,
          sk: m.sourceKey,
          se: m.sourceETag,
          created: m.rawCreatedAt,
          enriched: m.enrichedAt,
        },
      );
      stats.rows[m.table] = (stats.rows[m.table] ?? 0) + rows;
      stats.lagSeconds.push(Date.parse(m.rawCreatedAt));
      stats.objects++;
    } else {
      const manifest = manifestSchema.parse(await getJson(m.bucket, m.key));
      const { source } = manifest;
      if ((await supersede(c, source.key, source.eTag, source.createdAt)) === 'stale') {
        stats.skipped++;
        continue;
      }
      await c.run('DELETE FROM manifests WHERE source_key = $k', { k: source.key });
      await c.run(
        `INSERT INTO manifests VALUES ($sk, $se, $factory, $status, $format, $table, ${manifest.bytes},
          ${manifest.lines.total}, ${manifest.lines.loaded}, ${manifest.lines.rejected}, ${manifest.lines.blank}, ${manifest.lines.header},
          ${manifest.rows.readings}, ${manifest.rows.events}, $reason, CAST($created AS TIMESTAMPTZ),
          CAST($started AS TIMESTAMPTZ), CAST($finished AS TIMESTAMPTZ), ${manifest.seconds}, $mk)`,
        {
          sk: source.key,
          se: source.eTag,
          factory: manifest.factory,
          status: manifest.status,
          format: manifest.format ?? '',
          table: manifest.table ?? '',
          reason: manifest.quarantine?.reason ?? '',
          created: source.createdAt,
          started: manifest.startedAt,
          finished: manifest.finishedAt,
          mk: m.key,
        },
      );
      let rejects = 0;
      for (const [j, key] of manifest.outputs.filter((k) => k.startsWith('quarantine/rejects/')).entries()) {
        const rpath = join(work, `${i}-${j}.parquet`);
        await downloadToFile(m.bucket, key, rpath);
        await c.run('DELETE FROM rejects WHERE lake_key = $k', { k: key });
        const inserted = await c.run(
          `INSERT INTO rejects BY NAME SELECT *, $se AS source_etag, $k AS lake_key FROM read_parquet(${sqlString(rpath)})`,
          { k: key, se: source.eTag },
        );
        rejects += inserted.rowsChanged;
      }
      await c.run('DELETE FROM ledger WHERE lake_key = $k', { k: m.key });
      await c.run(
        `INSERT INTO ledger VALUES ($k, $e, 'manifest', $sk, $se, CAST($created AS TIMESTAMPTZ), ${rejects}, NULL, now())`,
        { k: m.key, e: m.eTag, sk: source.key, se: source.eTag, created: source.createdAt },
      );
      stats.rows.rejects = (stats.rows.rejects ?? 0) + rejects;
      stats.objects++;
    }
  }
}

/**
 * Recomputes baselines for the (factory, device, metric) keys this batch touched, over the last
 * `days` of their readings, and exports all baselines for the enrich function.
 */
async function updateBaselines(c: DuckDBConnection, days: number, out: string): Promise<void> {
  await c.run(
    `DELETE FROM baselines WHERE (factory, device, metric) IN (SELECT factory, device, metric FROM touched)`,
  );
  await c.run(`INSERT INTO baselines
    SELECT r.factory, r.device, r.metric, count(*), median(r.value), mad(r.value), now()
    FROM readings r SEMI JOIN (SELECT DISTINCT * FROM touched) t USING (factory, device, metric)
    WHERE r.ts >= (SELECT max(ts) FROM readings) - INTERVAL ${Math.trunc(days)} DAY
    GROUP BY ALL`);
  await c.run(`COPY (SELECT * FROM baselines) TO ${sqlString(out)} (FORMAT parquet, COMPRESSION zstd)`);
}

/**
 * One batch for the single writer: check out the warehouse file, apply every message (each lake
 * object version once, by the ledger), CHECKPOINT, and upload with a conditional write. If the file
 * changed underneath (another writer despite the FIFO group), start again from the fresh copy.
 */
export async function loadBatch(messages: WarehouseMessage[], deps: WarehouseDeps): Promise<BatchStats> {
  const started = performance.now();
  const commit = deps.commit ?? ((file, base) => file.commit(base));
  for (let attempt = 1; ; attempt++) {
    const stats: BatchStats = {
      objects: 0,
      skipped: 0,
      rows: {},
      lagSeconds: [],
      eTag: '',
      attempts: attempt,
      seconds: 0,
    };
    const base = await deps.file.checkout();
    const work = await mkdtemp(join(deps.tmpDir, 'warehouse-'));
    const baselines = join(work, 'baselines.parquet');
    try {
      const instance = await openDuckDB(deps.file.path);
      try {
        const c = await instance.connect();
        try {
          await c.run("SET TimeZone = 'UTC'");
          for (const ddl of TABLES) await c.run(ddl);
          for (const view of VIEWS) await c.run(view);
          await c.run('BEGIN TRANSACTION');
          await refreshReference(c, await deps.reference());
          await apply(c, messages, work, stats);
          await updateBaselines(c, deps.baselineDays, baselines);
          await c.run('COMMIT');
          await c.run('CHECKPOINT');
        } finally {
          c.closeSync();
        }
      } finally {
        instance.closeSync();
      }
      stats.eTag = await commit(deps.file, base);
      // Queryable from now on: the lag is measured against the upload, not the load.
      const now = Date.now();
      stats.lagSeconds = stats.lagSeconds.map((created) => (now - created) / 1000);
      await uploadFile(deps.warehouseBucket, BASELINES_KEY, baselines, 'application/vnd.apache.parquet');
      stats.seconds = (performance.now() - started) / 1000;
      return stats;
    } catch (err) {
      await deps.file.discard();
      if (err instanceof WarehouseConflictError && attempt < 5) continue;
      throw err;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
}
