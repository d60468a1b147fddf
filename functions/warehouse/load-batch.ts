import { mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import {
  BASELINES_KEY,
  BASES_PREFIX,
  baseGeneration,
  enrichedKey,
  isRejectsKey,
  LEGACY_KEY,
  NORMALIZED_PREFIX,
  newBaseKey,
} from '../contracts/keys.js';
import { type Manifest, manifestSchema } from '../contracts/manifest.js';
import type { WarehouseMessage } from '../contracts/messages.js';
import { DATA_TABLES, type DataTable } from '../contracts/tables.js';
import { sqlString } from '../core/duckdb.js';
import { logger } from '../core/logger.js';
import type { Reference } from '../core/reference-store.js';
import { appendReference } from '../core/reference-tables.js';
import {
  deleteObject,
  downloadToFile,
  getJson,
  headObject,
  isNotFound,
  listKeys,
  uploadFile,
} from '../core/s3.js';
import {
  type BaseRef,
  COMPACTION,
  type CompactionPolicy,
  createBase,
  type DeltaState,
  digest,
  foldDelta,
  readBaseRef,
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
  /** The compaction that ended the batch, if one was due; the base generation the batch was written against. */
  compaction: 'none' | 'done' | 'failed';
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

/**
 * Rows of data objects that an earlier run of this raw version made and the run the manifest describes
 * did not (a reprocess run after a rule fix can make fewer objects, other days, another table). Such an
 * object is gone from the lake — the ETL deletes them before it writes the manifest — which is checked
 * here, so that an outdated manifest never takes away the rows of a newer run's object. One small
 * ledger query per manifest; a HEAD only for a key the manifest does not list.
 */
async function removeUnmade(c: DuckDBConnection, bucket: string, manifest: Manifest): Promise<void> {
  const made = new Set(
    manifest.outputs.filter((k) => k.startsWith(NORMALIZED_PREFIX)).map((k) => enrichedKey(k)),
  );
  const loaded = (
    await c.runAndReadAll(
      `SELECT lake_key, kind FROM ledger WHERE source_key = $k AND source_etag = $e AND kind IN (${DATA_TABLES.map((t) => `'${t}'`).join(', ')})`,
      { k: manifest.source.key, e: manifest.source.eTag },
    )
  ).getRowsJS() as [string, DataTable][];
  for (const [key, table] of loaded) {
    if (made.has(key) || (await headObject(bucket, key))) continue;
    await removeRows(c, table, 'lake_key = $k', { k: key });
    await removeRows(c, 'ledger', 'lake_key = $k', { k: key });
    logger.info(
      { lake_key: key, source_key: manifest.source.key },
      'rows of an object no longer made removed',
    );
  }
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

/**
 * The columns the writer fills in the tables it writes by position (`VALUES`, a SELECT list): named, so
 * that the statements stay right in a table that gains a column (the canonical tables are written by
 * name, from the lake objects).
 */
const LEDGER_COLUMNS =
  'lake_key, etag, kind, source_key, source_etag, raw_created_at, rows, enriched_at, loaded_at';
const MANIFEST_COLUMNS = `source_key, source_etag, factory, status, format, "table", bytes, lines_total,
  lines_loaded, lines_rejected, lines_blank, lines_header, rows_readings, rows_events, quarantine_reason,
  raw_created_at, etl_started_at, etl_finished_at, etl_seconds, manifest_key`;

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
    // A reprocess run (`reprocess --step warehouse`) loads the object again all the same.
    if (existing === m.eTag && !m.reprocess) {
      stats.skipped++;
      continue;
    }
    const path = join(work, `${i}.${m.kind === 'manifest' ? 'json' : 'parquet'}`);
    if (m.kind === 'data') {
      if ((await supersede(c, m.sourceKey, m.sourceETag, m.rawCreatedAt)) === 'stale') {
        stats.skipped++;
        continue;
      }
      let eTag: string;
      try {
        // The object as it is now: rewritten since the message was sent (a reprocess run), it is the
        // newer version that loads, under its own ETag — and that version's message is then skipped.
        eTag = (await downloadToFile(m.bucket, m.key, path)).eTag;
      } catch (err) {
        if (!isNotFound(err)) throw err;
        // Gone: a later run of its raw file no longer makes it (that run's manifest removes its rows).
        logger.info({ lake_key: m.key }, 'lake object gone; not loaded');
        stats.skipped++;
        continue;
      }
      if (eTag === existing && !m.reprocess) {
        stats.skipped++;
        continue;
      }
      // Rows of an earlier version of this lake object exist only if the ledger has it (both are
      // written in one transaction): only then is the table scanned for them.
      if (existing !== undefined) {
        await removeRows(c, m.table, 'lake_key = $k', { k: m.key });
        await removeRows(c, 'ledger', 'lake_key = $k', { k: m.key });
      }
      // By name, never by position: Parquet from before a column was declared lacks it (NULL here),
      // and the table's columns are in the order they were added, not necessarily the file's.
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
        `INSERT INTO added.ledger (${LEDGER_COLUMNS}) VALUES ($k, $e, $kind, $sk, $se, CAST($created AS TIMESTAMPTZ), ${rows}, CAST($enriched AS TIMESTAMPTZ), now())`,
        {
          k: m.key,
          e: eTag,
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
        `INSERT INTO added.manifests (${MANIFEST_COLUMNS}) VALUES ($sk, $se, $factory, $status, $format, $table, ${manifest.bytes},
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
      // A manifest of this raw file loaded before (a new version, or a run again): its rejects go, as
      // the run described now may have other rejects files, or none. Otherwise a rejects file can only
      // be in the warehouse under its own key.
      if (existing !== undefined) {
        await removeRows(c, 'rejects', 'source_key = $k AND source_etag = $e', {
          k: source.key,
          e: source.eTag,
        });
      }
      await removeUnmade(c, m.bucket, manifest);
      let rejects = 0;
      for (const [j, key] of manifest.outputs.filter((k) => isRejectsKey(k)).entries()) {
        const rpath = join(work, `${i}-${j}.parquet`);
        await downloadToFile(m.bucket, key, rpath);
        if (existing === undefined) await removeRows(c, 'rejects', 'lake_key = $k', { k: key });
        // By name, as the data tables: rejects from an earlier ETL lack the columns declared since.
        const inserted = await c.run(
          `INSERT INTO added.rejects BY NAME SELECT *, $se AS source_etag, $k AS lake_key FROM read_parquet(${sqlString(rpath)})`,
          { k: key, se: source.eTag },
        );
        rejects += inserted.rowsChanged;
      }
      await removeRows(c, 'ledger', 'lake_key = $k', { k: m.key });
      await c.run(
        `INSERT INTO added.ledger (${LEDGER_COLUMNS}) VALUES ($k, $e, 'manifest', $sk, $se, CAST($created AS TIMESTAMPTZ), ${rejects}, NULL, now())`,
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
  await c.run(`INSERT INTO added.baselines (factory, device, metric, n, median, mad, updated_at)
    SELECT r.factory, r.device, r.metric, count(*), median(r.value), mad(r.value), now()
    FROM readings r SEMI JOIN (SELECT DISTINCT * FROM touched) t USING (factory, device, metric)
    WHERE r.ts >= (SELECT max(ts) FROM readings) - INTERVAL ${Math.trunc(days)} DAY
    GROUP BY ALL`);
  await c.run(`COPY (SELECT * FROM baselines) TO ${sqlString(out)} (FORMAT parquet, COMPRESSION zstd)`);
}

/**
 * One batch for the single writer: check out the delta and the base it names, apply every message to
 * the delta (each lake object version once, by the ledger), and upload the delta with a conditional
 * write — the batch's one commit point. If the delta changed underneath (another writer despite the
 * FIFO group), start again from a fresh copy. When the delta has grown enough, fold it into a new base.
 */
export async function loadBatch(messages: WarehouseMessage[], deps: WarehouseDeps): Promise<BatchStats> {
  const started = performance.now();
  const commit = deps.commit ?? ((file, eTag) => file.commit(eTag));
  const { delta, bases, bucket } = deps.files;
  for (let attempt = 1; ; attempt++) {
    const stats: BatchStats = {
      objects: 0,
      skipped: 0,
      rows: {},
      lagSeconds: [],
      eTag: '',
      compaction: 'none',
      generation: 0,
      attempts: attempt,
      seconds: 0,
    };
    const work = await mkdtemp(join(deps.tmpDir, 'warehouse-'));
    const baselines = join(work, 'baselines.parquet');
    try {
      const deltaETag = await delta.checkout();
      let ref: BaseRef;
      if (deltaETag === undefined && (await headObject(bucket, LEGACY_KEY))) {
        // A warehouse from before there were deltas: its single file becomes the first base, as is.
        ref = { generation: 0, baseKey: LEGACY_KEY };
      } else if (deltaETag === undefined) {
        // The first batch: an empty base, which the delta will name.
        ref = { generation: 0, baseKey: newBaseKey(0) };
        await mkdir(dirname(bases.path(ref.baseKey)), { recursive: true });
        await createBase(bases.path(ref.baseKey), ref);
        await uploadFile(bucket, ref.baseKey, bases.path(ref.baseKey), DUCKDB_TYPE);
      } else if (deps.files.named?.eTag === deltaETag) {
        ref = deps.files.named;
      } else {
        ref = await readBaseRef(delta.path);
      }
      const basePath = await bases.fetch(ref.baseKey);
      stats.generation = ref.generation;
      const { reference } = await writeDelta(delta.path, basePath, ref, async (c, state) => {
        await refreshReference(c, await deps.reference(), state);
        await apply(c, messages, work, stats);
        await updateBaselines(c, deps.baselineDays, baselines);
      });
      stats.eTag = await commit(delta, deltaETag);
      deps.files.named = { eTag: stats.eTag, generation: ref.generation, baseKey: ref.baseKey };
      // Queryable from now on: the lag is measured against the upload, not the load.
      const now = Date.now();
      stats.lagSeconds = stats.lagSeconds.map((created) => (now - created) / 1000);
      const [deltaSize, baseSize] = await Promise.all([stat(delta.path), stat(basePath)]);
      if (
        shouldCompact(deltaSize.size, baseSize.size, deps.compaction ?? COMPACTION) &&
        Date.now() >= (deps.files.compactAfter ?? 0)
      ) {
        // The batch is committed whatever happens here: a compaction that fails is tried again by a
        // later batch (the delta only grows meanwhile), never retried with this one.
        try {
          const next = await compact(deps.files, ref, { eTag: stats.eTag, reference }, commit);
          stats.eTag = next.eTag;
          deps.files.named = next;
          stats.compaction = 'done';
        } catch (err) {
          stats.compaction = 'failed';
          // Overtaken by another batch: try with the next one. Anything else (the base too big for
          // the function, the store refusing it): not again from this container for a while.
          if (!(err instanceof WarehouseConflictError)) {
            deps.files.compactAfter = Date.now() + COMPACTION_BACKOFF_MS;
          }
          logger.error(
            { err, error_code: 'compaction-failed', base: ref.baseKey },
            'warehouse compaction failed',
          );
        }
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

const DUCKDB_TYPE = 'application/vnd.duckdb';
/** After a compaction fails (other than by being overtaken), this container waits this long to try again. */
const COMPACTION_BACKOFF_MS = 5 * 60 * 1000;

/**
 * Folds the delta into a new base (generation + 1, a key of its own), uploads it, then commits an empty
 * delta that names it — with `If-Match` on the delta just committed, so the switch happens only if no
 * other batch came in between; otherwise the new base is abandoned. Until that commit, readers and
 * writers go on with the old base and delta: nothing is visible half-way. Returns the new delta's ETag
 * and the base it names.
 * Bases older than the one before (which readers may still hold), or abandoned, are deleted.
 */
async function compact(
  files: WarehouseFiles,
  ref: BaseRef,
  folded: { eTag: string; reference: string | null },
  commit: NonNullable<WarehouseDeps['commit']>,
): Promise<BaseRef & { eTag: string }> {
  const next: BaseRef = { generation: ref.generation + 1, baseKey: newBaseKey(ref.generation + 1) };
  const { bases, delta, bucket } = files;
  // The local copy of the current base becomes the new one (in place: bases can be large).
  await rename(bases.path(ref.baseKey), bases.path(next.baseKey));
  let eTag: string;
  try {
    await foldDelta(bases.path(next.baseKey), delta.path, next);
    await uploadFile(bucket, next.baseKey, bases.path(next.baseKey), DUCKDB_TYPE);
    await delta.discard();
    // The reference data is in the new base: the new delta carries its digest on.
    await writeDelta(delta.path, bases.path(next.baseKey), next, async (_c, state) => {
      state.reference = folded.reference;
    });
    eTag = await commit(delta, folded.eTag);
  } catch (err) {
    // The next batch downloads what the store holds: the delta it committed and the base that names.
    await Promise.all([bases.forget(next.baseKey), delta.discard()]);
    throw err;
  }
  try {
    // Bases older than the previous one, and others of its generation (abandoned: never named by a
    // committed delta). Readers may still hold the previous one; a base of the new generation or later
    // may be another writer's, not yet committed (its switch will fail, and a later compaction deletes it).
    for (const key of await listKeys(bucket, BASES_PREFIX)) {
      const generation = baseGeneration(key);
      if (generation === undefined) continue;
      if (generation < ref.generation || (generation === ref.generation && key !== ref.baseKey)) {
        await deleteObject(bucket, key);
      }
    }
  } catch (err) {
    logger.warn({ err, error_code: 'base-cleanup-failed' }, 'old warehouse bases not deleted');
  }
  return { eTag, ...next };
}
