import { mkdtemp, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { sqlString } from '../core/duckdb.js';
import { downloadToFile, getJson, uploadFile } from '../core/s3.js';
import type { WarehouseMessage } from '../core/warehouse-message.js';
import { BASELINES_KEY } from '../enrich/baselines.js';
import type { Reference } from '../enrich/reference-store.js';
import { appendReference } from '../enrich/reference-tables.js';
import { manifestSchema } from '../etl/manifest.js';
import {
  COMPACTION,
  type CompactionPolicy,
  createBase,
  type DeltaState,
  digest,
  foldDelta,
  removeRows,
  shouldCompact,
  writeDelta,
} from './delta.js';
import { WarehouseConflictError, type WarehouseFile, type WarehouseFiles } from './warehouse-file.js';

export interface WarehouseDeps {
  files: WarehouseFiles;
  warehouseBucket: string;
  tmpDir: string;
  reference: () => Promise<Reference>;
  baselineDays: number;
  /** Uploads a working copy; injectable so tests can fail it (a crash before an upload). */
  commit?: (file: WarehouseFile, eTag: string | undefined) => Promise<string>;
  /** When the delta is folded into the base (default: COMPACTION). */
  compaction?: CompactionPolicy;
}

export interface BatchStats {
  objects: number;
  skipped: number;
  rows: Record<string, number>;
  /** Seconds from raw object creation to queryable (uploaded), per data object. */
  lagSeconds: number[];
  /** The delta file's ETag after the batch. */
  eTag: string;
  /** Whether the batch ended with a compaction; the base generation the batch was written against. */
  compacted: boolean;
  generation: number;
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
    for (const t of ['readings', 'events', 'rejects', 'ledger', 'manifests'] as const) {
      await removeRows(c, t, 'source_key = $k AND source_etag <> $e', { k: sourceKey, e: sourceETag });
    }
  }
  return 'ok';
}

/** Replaces `devices` and `error_codes` when the reference data differs from what was last written. */
async function refreshReference(c: DuckDBConnection, ref: Reference, state: DeltaState): Promise<void> {
  const current = digest([JSON.stringify(ref.devices), JSON.stringify(ref.errorCodes)]);
  if (state.reference === current) return;
  state.reference = current;
  await removeRows(c, 'devices', 'true');
  await removeRows(c, 'error_codes', 'true');
  await appendReference(c, ref, { devices: 'devices', errorCodes: 'error_codes', schema: 'added' });
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
        await removeRows(c, m.table, 'lake_key = $k', { k: m.key });
        await removeRows(c, 'ledger', 'lake_key = $k', { k: m.key });
      }
      const rows = (
        await c.run(
          `INSERT INTO added.${m.table} BY NAME SELECT *, $k AS lake_key FROM read_parquet(${sqlString(path)})`,
          { k: m.key },
        )
      ).rowsChanged;
      if (m.table === 'readings') {
        await c.run(
          `INSERT INTO touched SELECT DISTINCT factory, device, metric FROM read_parquet(${sqlString(path)})`,
        );
      }
      await c.run(
        `INSERT INTO added.ledger VALUES ($k, $e, $kind, $sk, $se, CAST($created AS TIMESTAMPTZ), ${rows}, CAST($enriched AS TIMESTAMPTZ), now())`,
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
      await removeRows(c, 'manifests', 'source_key = $k', { k: source.key });
      await c.run(
        `INSERT INTO added.manifests VALUES ($sk, $se, $factory, $status, $format, $table, ${manifest.bytes},
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
        await removeRows(c, 'rejects', 'lake_key = $k', { k: key });
        const inserted = await c.run(
          `INSERT INTO added.rejects BY NAME SELECT *, $se AS source_etag, $k AS lake_key FROM read_parquet(${sqlString(rpath)})`,
          { k: key, se: source.eTag },
        );
        rejects += inserted.rowsChanged;
      }
      await removeRows(c, 'ledger', 'lake_key = $k', { k: m.key });
      await c.run(
        `INSERT INTO added.ledger VALUES ($k, $e, 'manifest', $sk, $se, CAST($created AS TIMESTAMPTZ), ${rejects}, NULL, now())`,
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
  await removeRows(
    c,
    'baselines',
    '(factory, device, metric) IN (SELECT factory, device, metric FROM touched)',
  );
  await c.run(`INSERT INTO added.baselines
    SELECT r.factory, r.device, r.metric, count(*), median(r.value), mad(r.value), now()
    FROM readings r SEMI JOIN (SELECT DISTINCT * FROM touched) t USING (factory, device, metric)
    WHERE r.ts >= (SELECT max(ts) FROM readings) - INTERVAL ${Math.trunc(days)} DAY
    GROUP BY ALL`);
  await c.run(`COPY (SELECT * FROM baselines) TO ${sqlString(out)} (FORMAT parquet, COMPRESSION zstd)`);
}

/**
 * One batch for the single writer: check out the warehouse files (the base read-only), apply every
 * message to the delta (each lake object version once, by the ledger), and upload the delta with a
 * conditional write. If a file changed underneath (another writer despite the FIFO group), start again
 * from fresh copies. When the delta has grown enough, fold it into the base (`compact`).
 */
export async function loadBatch(messages: WarehouseMessage[], deps: WarehouseDeps): Promise<BatchStats> {
  const started = performance.now();
  const commit = deps.commit ?? ((file, eTag) => file.commit(eTag));
  const { base, delta } = deps.files;
  for (let attempt = 1; ; attempt++) {
    const stats: BatchStats = {
      objects: 0,
      skipped: 0,
      rows: {},
      lagSeconds: [],
      eTag: '',
      compacted: false,
      generation: 0,
      attempts: attempt,
      seconds: 0,
    };
    const work = await mkdtemp(join(deps.tmpDir, 'warehouse-'));
    const baselines = join(work, 'baselines.parquet');
    try {
      let baseETag = await base.checkout('read-only');
      if (baseETag === undefined) {
        await createBase(base.path);
        baseETag = await commit(base, undefined);
      }
      const deltaETag = await delta.checkout();
      stats.generation = await writeDelta(delta.path, base.path, async (c, state) => {
        await refreshReference(c, await deps.reference(), state);
        await apply(c, messages, work, stats);
        await updateBaselines(c, deps.baselineDays, baselines);
      });
      stats.eTag = await commit(delta, deltaETag);
      // Queryable from now on: the lag is measured against the upload, not the load.
      const now = Date.now();
      stats.lagSeconds = stats.lagSeconds.map((created) => (now - created) / 1000);
      const [deltaSize, baseSize] = await Promise.all([stat(delta.path), stat(base.path)]);
      if (shouldCompact(deltaSize.size, baseSize.size, deps.compaction ?? COMPACTION)) {
        stats.eTag = await compact(deps.files, baseETag, stats.eTag, commit);
        stats.compacted = true;
      }
      await uploadFile(deps.warehouseBucket, BASELINES_KEY, baselines, 'application/vnd.apache.parquet');
      stats.seconds = (performance.now() - started) / 1000;
      return stats;
    } catch (err) {
      await delta.discard();
      if (err instanceof WarehouseConflictError && attempt < 5) continue;
      throw err;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
}

/**
 * Folds the delta into the base and uploads the base (generation + 1), then an empty delta for it;
 * returns the new delta's ETag. Stopped between the two uploads, the old delta is left behind an
 * already-newer base: readers and the next batch recognise it by its generation and set it aside.
 */
async function compact(
  files: WarehouseFiles,
  baseETag: string,
  deltaETag: string,
  commit: NonNullable<WarehouseDeps['commit']>,
): Promise<string> {
  await files.base.modify();
  try {
    await foldDelta(files.base.path, files.delta.path);
    await commit(files.base, baseETag);
  } catch (err) {
    await files.base.discard();
    throw err;
  }
  await files.delta.discard();
  await writeDelta(files.delta.path, files.base.path, async () => {});
  return commit(files.delta, deltaETag);
}
