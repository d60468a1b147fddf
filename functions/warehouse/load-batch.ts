import { mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import {
  BASELINES_KEY,
  BASES_PREFIX,
  baseGeneration,
  enrichedKey,
  isRejectsKey,
  L1_PREFIX,
  LEGACY_KEY,
  NORMALIZED_PREFIX,
  newBaseKey,
  newL1Key,
  parseDataKey,
} from '../contracts/keys.js';
import {
  enrichedOutputs,
  type Manifest,
  manifestSchema,
  pastWarehouseRetention,
  warehouseCutoff,
} from '../contracts/manifest.js';
import type { WarehouseFile as FileEntry, WarehouseMessage } from '../contracts/messages.js';
import { DATA_TABLES, type DataTable, isDataTable } from '../contracts/tables.js';
import { forEachConcurrent } from '../core/concurrency.js';
import { sqlString } from '../core/duckdb.js';
import { logger } from '../core/logger.js';
import type { Reference } from '../core/reference-store.js';
import { appendReference } from '../core/reference-tables.js';
import {
  deleteObject,
  downloadIfChanged,
  downloadToFile,
  getObjectJson,
  headObject,
  isNotFound,
  listKeys,
  uploadFile,
} from '../core/s3.js';
import {
  type BaseRef,
  COMPACTION,
  type CompactionPolicy,
  compactionDue,
  createBase,
  type DeltaState,
  digest,
  foldDelta,
  foldIntoL1,
  readBaseRef,
  removeRows,
  writeDelta,
} from './delta.js';
import { RETIRED } from './schema.js';
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
  /** Days of data the warehouse keeps (`WAREHOUSE_RETENTION_DAYS`; unset: all). */
  retentionDays?: number;
  now?: () => Date;
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
  /** What the compaction after the commit folded into: a new base, or a new level-1 file. */
  compacted?: 'base' | 'l1';
  generation: number;
  attempts: number;
  /** Seconds until the batch was committed (queryable), and until the batch ended (compaction too). */
  committedSeconds: number;
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
  cutoff: Date | undefined,
): Promise<void> {
  await c.run('CREATE OR REPLACE TEMP TABLE touched (factory VARCHAR, device VARCHAR, metric VARCHAR)');
  // The files of consecutive `files` messages are applied together (one statement per table for all of
  // them); a `data` or `manifest` message in between is applied in its place, after the files before it.
  let files: FileEntry[] = [];
  const flush = async () => {
    if (files.length > 0)
      await applyFiles(c, files, join(work, `files-${stats.objects + stats.skipped}`), stats, cutoff);
    files = [];
  };
  for (const [i, m] of messages.entries()) {
    if (m.kind === 'files') {
      files.push(...m.files);
      continue;
    }
    await flush();
    const dir = join(work, String(i));
    await mkdir(dir);
    if (m.kind === 'data') {
      // An object of a file retired (past the retention: its manifest's message says so, and comes
      // with these from `reprocess --step warehouse`) is not loaded.
      if (await isRetired(c, m.sourceKey, m.sourceETag)) stats.skipped++;
      else await applyData(c, m, dir, stats);
    } else {
      const current = await getObjectJson(m.bucket, m.key);
      if (!current) {
        logger.info({ lake_key: m.key }, 'manifest gone; file not loaded');
        stats.skipped++;
        continue;
      }
      const manifest = manifestSchema.parse(current.value);
      if (pastWarehouseRetention(manifest, cutoff))
        await retireFiles(c, [{ key: m.key, eTag: current.eTag, manifest }], stats);
      else await applyManifest(c, { ...m, manifest }, dir, stats);
    }
  }
  await flush();
}

/** A manifest version past the warehouse's retention. */
interface Retiring {
  key: string;
  eTag: string;
  manifest: Manifest;
}

/**
 * Files past the warehouse's retention that were sent to it (a late backfill of old data, a reprocess, a
 * message from before the retention was set): nothing of them loads, what an earlier version loaded goes
 * as a compaction would drop it, and each manifest version is recorded in the ledger as `retired` — as a
 * compaction records what it drops — so the reconciler counts it as accounted for and neither reads its
 * manifest nor sends it again.
 */
async function retireFiles(c: DuckDBConnection, files: Retiring[], stats: BatchStats): Promise<void> {
  if (files.length === 0) return;
  for (const f of files) {
    logger.info(
      { lake_key: f.key, source_key: f.manifest.source.key },
      'file past the warehouse retention; not loaded',
    );
  }
  stats.skipped += files.length;
  await tempTable(
    c,
    'retiring',
    ['manifest_key', 'manifest_etag', 'source_key', 'source_etag', 'raw_created_at'],
    files.map((f) => [
      f.key,
      f.eTag,
      f.manifest.source.key,
      f.manifest.source.eTag,
      f.manifest.source.createdAt,
    ]),
  );
  // Not again (a redelivery, a resend), and not over a newer raw version (a manifest written late by
  // an older run): as `supersede` does for a load.
  await c.run(
    `DELETE FROM retiring r WHERE EXISTS (SELECT 1 FROM ledger l WHERE
       (l.lake_key = r.manifest_key AND l.etag = r.manifest_etag AND l.kind = '${RETIRED}')
       OR (l.source_key = r.source_key AND l.source_etag <> r.source_etag
           AND l.raw_created_at > CAST(r.raw_created_at AS TIMESTAMPTZ)))`,
  );
  if (Number(await scalar(c, 'SELECT count(*) FROM retiring')) === 0) return;
  const ofThem = 'source_key IN (SELECT source_key FROM retiring)';
  // Rows of theirs are loaded only if the ledger holds more than a retired version: only then are the
  // tables scanned.
  if (Number(await scalar(c, `SELECT count(*) FROM ledger WHERE kind <> '${RETIRED}' AND ${ofThem}`)) > 0) {
    for (const t of ['readings', 'events', 'rejects', 'manifests'] as const) await removeRows(c, t, ofThem);
  }
  await removeRows(c, 'ledger', `${ofThem} OR lake_key IN (SELECT manifest_key FROM retiring)`);
  await c.run(
    `INSERT INTO added.ledger (${LEDGER_COLUMNS})
     SELECT manifest_key, manifest_etag, '${RETIRED}', source_key, source_etag,
       CAST(raw_created_at AS TIMESTAMPTZ), 0, NULL, now()
     FROM retiring`,
  );
}

/** Whether the ledger holds a raw version as retired (past the warehouse's retention). */
async function isRetired(c: DuckDBConnection, sourceKey: string, sourceETag: string): Promise<boolean> {
  const n = await scalar(
    c,
    `SELECT count(*) FROM ledger WHERE kind = '${RETIRED}' AND source_key = $k AND source_etag = $e`,
    { k: sourceKey, e: sourceETag },
  );
  return Number(n) > 0;
}

/** The ETag of the version of a lake object the ledger holds. */
async function ledgerETag(c: DuckDBConnection, key: string): Promise<string | undefined> {
  return (await scalar(c, 'SELECT etag FROM ledger WHERE lake_key = $k', { k: key })) as string | undefined;
}

/** Downloads and conditional GETs: this many lake objects at once (a batch of files has hundreds). */
const IO_CONCURRENCY = 8;

/** A temp table of VARCHAR columns, filled by the appender (no SQL built from the values). */
async function tempTable(c: DuckDBConnection, name: string, columns: string[], rows: string[][]) {
  await c.run(`CREATE OR REPLACE TEMP TABLE ${name} (${columns.map((col) => `${col} VARCHAR`).join(', ')})`);
  const appender = await c.createAppender(name, 'main', 'temp');
  for (const row of rows) {
    for (const v of row) appender.appendVarchar(v);
    appender.endRow();
  }
  appender.closeSync();
}

const parquetList = (paths: readonly string[]) => `[${paths.map((p) => sqlString(p)).join(', ')}]`;

/** Rows per file, from the Parquet footers (a file with no rows has no row group: 0). */
const footerRows = (list: string) =>
  `SELECT file_name, sum(row_group_num_rows) AS n FROM (SELECT DISTINCT file_name, row_group_id, row_group_num_rows FROM parquet_metadata(${list})) GROUP BY 1`;

interface FileWork {
  entry: FileEntry;
  eTag: string;
  manifest: Manifest;
  /** The ledger's rows of this raw version: lake key → [ETag, kind]. */
  loaded: Map<string, [string, string]>;
}

/**
 * The files of a batch (`files` entries): each manifest as the lake holds it now, every enriched object
 * its run made whose version the ledger does not hold yet (a conditional GET each: one loaded before
 * answers 304), then each manifest's accounting and rejects. The statements are per batch, not per file
 * — one ledger read, one INSERT per table, one for manifests, rejects and their ledger rows — so a commit
 * of a hundred files costs a few statements more than a commit of one. Per file only what is rare: a
 * newer version replacing an older one's rows, an object that a run no longer makes.
 */
async function applyFiles(
  c: DuckDBConnection,
  entries: FileEntry[],
  dir: string,
  stats: BatchStats,
  cutoff: Date | undefined,
) {
  await mkdir(dir, { recursive: true });
  // One entry per manifest: each reads what the lake holds now, so a repeat adds nothing but a reprocess mark.
  const unique = new Map<string, FileEntry>();
  for (const e of entries) {
    const id = `${e.bucket}\u0000${e.key}`;
    const seen = unique.get(id);
    unique.set(id, seen && !e.reprocess ? { ...e, reprocess: seen.reprocess } : e);
    if (seen) stats.skipped++;
  }
  const list = [...unique.values()];
  const read: (Awaited<ReturnType<typeof getObjectJson>> | undefined)[] = new Array(list.length);
  await forEachConcurrent(list, IO_CONCURRENCY, async (e, i) => {
    read[i] = await getObjectJson(e.bucket, e.key);
  });
  const candidates: Omit<FileWork, 'loaded'>[] = [];
  const retiring: Retiring[] = [];
  for (const [i, entry] of list.entries()) {
    const current = read[i];
    if (!current) {
      // Gone (its raw file deleted meanwhile): nothing can load.
      logger.info({ lake_key: entry.key }, 'manifest gone; file not loaded');
      stats.skipped++;
      continue;
    }
    const manifest = manifestSchema.parse(current.value);
    if (pastWarehouseRetention(manifest, cutoff))
      retiring.push({ key: entry.key, eTag: current.eTag, manifest });
    else candidates.push({ entry, eTag: current.eTag, manifest });
  }
  await retireFiles(c, retiring, stats);
  // The ledger rows of all these raw files, in one read.
  await tempTable(
    c,
    'batch_sources',
    ['source_key'],
    candidates.map((f) => [f.manifest.source.key]),
  );
  const ledgerRows = (
    await c.runAndReadAll(
      `SELECT lake_key, etag, kind, source_key, source_etag, epoch_ms(raw_created_at) FROM ledger
       WHERE source_key IN (SELECT source_key FROM batch_sources)`,
    )
  ).getRows() as [string, string, string, string, string, bigint | number][];
  const files: FileWork[] = [];
  for (const f of candidates) {
    const { source } = f.manifest;
    const rows = ledgerRows.filter((r) => r[3] === source.key);
    // Older versions of a raw file are replaced by newer ones; a late message for an older one is stale.
    if (rows.some((r) => r[4] !== source.eTag && Number(r[5]) > Date.parse(source.createdAt))) {
      stats.skipped++;
      continue;
    }
    if (rows.some((r) => r[4] !== source.eTag)) {
      for (const t of ['readings', 'events', 'rejects', 'ledger', 'manifests'] as const) {
        await removeRows(c, t, 'source_key = $k AND source_etag <> $e', { k: source.key, e: source.eTag });
      }
    }
    const loaded = new Map(
      rows.filter((r) => r[4] === source.eTag).map((r): [string, [string, string]] => [r[0], [r[1], r[2]]]),
    );
    files.push({ ...f, loaded });
  }

  // Data objects: those whose version the ledger lacks (or all, for a reprocess run).
  const wanted = files.flatMap((f) => enrichedOutputs(f.manifest).map((key) => ({ f, key })));
  const fetched: ({ f: FileWork; key: string; path: string; eTag: string; replaces: boolean } | undefined)[] =
    new Array(wanted.length);
  await forEachConcurrent(wanted, IO_CONCURRENCY, async ({ f, key }, n) => {
    const existing = f.loaded.get(key)?.[0];
    const path = join(dir, `${n}.parquet`);
    const eTag = await downloadIfChanged(f.entry.bucket, key, path, f.entry.reprocess ? undefined : existing);
    if (eTag === undefined) {
      // Not there: a later run of the raw file no longer makes it (that run's manifest removes its
      // rows), or enrich has not written it — the reconciler finds that and sends the manifest again.
      logger.info({ lake_key: key }, 'enriched object missing; not loaded');
      stats.skipped++;
    } else if (eTag === existing && !f.entry.reprocess) {
      stats.skipped++;
    } else {
      fetched[n] = { f, key, path, eTag, replaces: existing !== undefined };
    }
  });
  for (const table of DATA_TABLES) {
    const objects = fetched.filter(
      (o) => o !== undefined && parseDataKey(o.key)?.table === table,
    ) as NonNullable<(typeof fetched)[number]>[];
    if (objects.length === 0) continue;
    // Rows of an earlier version of an object exist only if the ledger has it (both are written in one
    // transaction): only then is the table scanned for them.
    for (const o of objects.filter((x) => x.replaces)) {
      await removeRows(c, table, 'lake_key = $k', { k: o.key });
      await removeRows(c, 'ledger', 'lake_key = $k', { k: o.key });
    }
    await tempTable(
      c,
      'incoming',
      ['path', 'lake_key', 'etag', 'source_key', 'source_etag', 'raw_created_at', 'enriched_at'],
      objects.map((o) => {
        const { source } = o.f.manifest;
        return [o.path, o.key, o.eTag, source.key, source.eTag, source.createdAt, o.f.entry.enrichedAt];
      }),
    );
    const paths = parquetList(objects.map((o) => o.path));
    // By name, never by position: Parquet from before a column was declared lacks it (NULL here),
    // and the table's columns are in the order they were added, not necessarily the file's.
    const rows = (
      await c.run(`INSERT INTO added.${table} BY NAME
        SELECT s.* EXCLUDE (filename), i.lake_key
        FROM read_parquet(${paths}, filename = true, union_by_name = true) s JOIN incoming i ON i.path = s.filename`)
    ).rowsChanged;
    if (table === 'readings') {
      await c.run(
        `INSERT INTO touched SELECT DISTINCT factory, device, metric FROM read_parquet(${paths}, union_by_name = true)`,
      );
    }
    await c.run(
      `INSERT INTO added.ledger (${LEDGER_COLUMNS})
       SELECT i.lake_key, i.etag, '${table}', i.source_key, i.source_etag, CAST(i.raw_created_at AS TIMESTAMPTZ),
         coalesce(m.n, 0), CAST(i.enriched_at AS TIMESTAMPTZ), now()
       FROM incoming i LEFT JOIN (${footerRows(paths)}) m ON m.file_name = i.path`,
    );
    stats.rows[table] = (stats.rows[table] ?? 0) + rows;
    for (const o of objects) stats.lagSeconds.push(Date.parse(o.f.manifest.source.createdAt));
    stats.objects += objects.length;
  }

  // Manifests: those whose version the ledger lacks (or all, for a reprocess run).
  const recording = files.filter((f) => {
    const keep = f.loaded.get(f.entry.key)?.[0] !== f.eTag || f.entry.reprocess !== undefined;
    if (!keep) stats.skipped++;
    return keep;
  });
  if (recording.length === 0) return;
  await tempTable(
    c,
    'mf',
    ['manifest_key', 'manifest_etag', 'source_key', 'source_etag', 'raw_created_at', 'had_manifest'],
    recording.map((f) => [
      f.entry.key,
      f.eTag,
      f.manifest.source.key,
      f.manifest.source.eTag,
      f.manifest.source.createdAt,
      f.loaded.has(f.entry.key) ? 'y' : 'n',
    ]),
  );
  await removeRows(c, 'manifests', 'source_key IN (SELECT source_key FROM mf)');
  // A manifest of this raw version loaded before (a run again): its rejects go, as the run described
  // now may have other rejects files, or none. Otherwise a rejects file can only be in the warehouse
  // under its own key.
  await removeRows(
    c,
    'rejects',
    "source_key || chr(0) || source_etag IN (SELECT source_key || chr(0) || source_etag FROM mf WHERE had_manifest = 'y')",
  );
  for (const f of recording) await removeUnmadeFrom(c, f);
  const rejects = recording.flatMap((f) =>
    f.manifest.outputs.filter((k) => isRejectsKey(k)).map((key) => ({ f, key })),
  );
  const rejectPaths = rejects.map((_, j) => join(dir, `rejects-${j}.parquet`));
  await forEachConcurrent(rejects, IO_CONCURRENCY, async ({ f, key }, j) => {
    await downloadToFile(f.entry.bucket, key, rejectPaths[j]!);
  });
  await tempTable(
    c,
    'rj',
    ['path', 'lake_key', 'manifest_key', 'source_etag', 'had_manifest'],
    rejects.map(({ f, key }, j) => [
      rejectPaths[j]!,
      key,
      f.entry.key,
      f.manifest.source.eTag,
      f.loaded.has(f.entry.key) ? 'y' : 'n',
    ]),
  );
  let rejectCounts = 'SELECT NULL::VARCHAR AS manifest_key, 0 AS n WHERE false';
  if (rejects.length > 0) {
    const paths = parquetList(rejectPaths);
    await removeRows(c, 'rejects', "lake_key IN (SELECT lake_key FROM rj WHERE had_manifest = 'n')");
    // By name, as the data tables: rejects from an earlier ETL lack the columns declared since.
    const inserted = await c.run(
      `INSERT INTO added.rejects BY NAME SELECT s.* EXCLUDE (filename), r.source_etag, r.lake_key
       FROM read_parquet(${paths}, filename = true, union_by_name = true) s JOIN rj r ON r.path = s.filename`,
    );
    stats.rows.rejects = (stats.rows.rejects ?? 0) + inserted.rowsChanged;
    rejectCounts = `SELECT r.manifest_key, sum(m.n) AS n FROM rj r JOIN (${footerRows(paths)}) m ON m.file_name = r.path GROUP BY 1`;
  }
  await insertManifestRows(c, recording);
  await removeRows(c, 'ledger', 'lake_key IN (SELECT manifest_key FROM mf)');
  await c.run(
    `INSERT INTO added.ledger (${LEDGER_COLUMNS})
     SELECT k.manifest_key, k.manifest_etag, 'manifest', k.source_key, k.source_etag,
       CAST(k.raw_created_at AS TIMESTAMPTZ), coalesce(r.n, 0), NULL, now()
     FROM mf k LEFT JOIN (${rejectCounts}) r USING (manifest_key)`,
  );
  stats.objects += recording.length;
}

/** `manifests` rows of the files, in one INSERT (values bound, numbers from the validated manifests). */
async function insertManifestRows(c: DuckDBConnection, files: FileWork[]): Promise<void> {
  const values: Record<string, string> = {};
  const tuples = files.map((f, i) => {
    const m = f.manifest;
    Object.assign(values, {
      [`sk${i}`]: m.source.key,
      [`se${i}`]: m.source.eTag,
      [`fa${i}`]: m.factory,
      [`st${i}`]: m.status,
      [`fo${i}`]: m.format ?? '',
      [`ta${i}`]: m.table ?? '',
      [`re${i}`]: m.quarantine?.reason ?? '',
      [`cr${i}`]: m.source.createdAt,
      [`sa${i}`]: m.startedAt,
      [`fi${i}`]: m.finishedAt,
      [`mk${i}`]: f.entry.key,
    });
    return `($sk${i}, $se${i}, $fa${i}, $st${i}, $fo${i}, $ta${i}, ${m.bytes}, ${m.lines.total}, ${m.lines.loaded},
      ${m.lines.rejected}, ${m.lines.blank}, ${m.lines.header}, ${m.rows.readings}, ${m.rows.events}, $re${i},
      CAST($cr${i} AS TIMESTAMPTZ), CAST($sa${i} AS TIMESTAMPTZ), CAST($fi${i} AS TIMESTAMPTZ), ${m.seconds}, $mk${i})`;
  });
  await c.run(`INSERT INTO added.manifests (${MANIFEST_COLUMNS}) VALUES ${tuples.join(',\n')}`, values);
}

/**
 * Rows of data objects that an earlier run of this raw version made and the run the manifest describes
 * did not (see `removeUnmade`), found in the ledger rows already read for the batch.
 */
async function removeUnmadeFrom(c: DuckDBConnection, f: FileWork): Promise<void> {
  const made = new Set(enrichedOutputs(f.manifest));
  for (const [key, [, kind]] of f.loaded) {
    if (!isDataTable(kind) || made.has(key) || (await headObject(f.entry.bucket, key))) continue;
    await removeRows(c, kind, 'lake_key = $k', { k: key });
    await removeRows(c, 'ledger', 'lake_key = $k', { k: key });
    logger.info(
      { lake_key: key, source_key: f.manifest.source.key },
      'rows of an object no longer made removed',
    );
  }
}

/** One enriched object (a `data` message: `reprocess --step warehouse`, or queued by an earlier release). */
async function applyData(
  c: DuckDBConnection,
  m: Extract<WarehouseMessage, { kind: 'data' }>,
  dir: string,
  stats: BatchStats,
): Promise<void> {
  const existing = await ledgerETag(c, m.key);
  // A reprocess run (`reprocess --step warehouse`) loads the object again all the same.
  if (existing === m.eTag && !m.reprocess) {
    stats.skipped++;
    return;
  }
  if ((await supersede(c, m.sourceKey, m.sourceETag, m.rawCreatedAt)) === 'stale') {
    stats.skipped++;
    return;
  }
  const path = join(dir, 'data.parquet');
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
    return;
  }
  if (eTag === existing && !m.reprocess) {
    stats.skipped++;
    return;
  }
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
}

/**
 * A manifest: the file's row in `manifests`, its rejects, and what an earlier run of the same raw
 * version made that this run did not. Skipped when the ledger holds this manifest version already.
 */
async function applyManifest(
  c: DuckDBConnection,
  m: { bucket: string; key: string; eTag: string; manifest: Manifest; reprocess?: unknown },
  dir: string,
  stats: BatchStats,
): Promise<void> {
  const { manifest } = m;
  const existing = await ledgerETag(c, m.key);
  if (existing === m.eTag && !m.reprocess) {
    stats.skipped++;
    return;
  }
  const { source } = manifest;
  if ((await supersede(c, source.key, source.eTag, source.createdAt)) === 'stale') {
    stats.skipped++;
    return;
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
    const rpath = join(dir, `rejects-${j}.parquet`);
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
 * One batch for the single writer: check out the delta and the files it names (the base, and the
 * level-1 file when there is one), apply every message to the delta (each lake object version once, by
 * the ledger), and upload the delta with a conditional write — the batch's one commit point. If the
 * delta changed underneath (another writer despite the FIFO group), start again from a fresh copy.
 * After the commit, when due: the delta is folded into a new level-1 file (it has reached a few MB),
 * or the delta and level-1 file into a new base (they have reached a quarter of it).
 */
export async function loadBatch(messages: WarehouseMessage[], deps: WarehouseDeps): Promise<BatchStats> {
  const started = performance.now();
  const commit = deps.commit ?? ((file, eTag) => file.commit(eTag));
  const { delta, bases, l1s, bucket } = deps.files;
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
      committedSeconds: 0,
      seconds: 0,
    };
    const work = await mkdtemp(join(deps.tmpDir, 'warehouse-'));
    const baselines = join(work, 'baselines.parquet');
    const cutoff = warehouseCutoff(deps.retentionDays, deps.now?.());
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
      const l1Path = ref.l1Key === undefined ? undefined : await l1s.fetch(ref.l1Key);
      stats.generation = ref.generation;
      const { reference } = await writeDelta(
        delta.path,
        basePath,
        ref,
        async (c, state) => {
          await refreshReference(c, await deps.reference(), state);
          await apply(c, messages, work, stats, cutoff);
          await updateBaselines(c, deps.baselineDays, baselines);
        },
        undefined,
        l1Path,
      );
      stats.eTag = await commit(delta, deltaETag);
      stats.committedSeconds = (performance.now() - started) / 1000;
      deps.files.named = { eTag: stats.eTag, ...ref };
      // Queryable from now on: the lag is measured against the upload, not the load.
      const now = Date.now();
      stats.lagSeconds = stats.lagSeconds.map((created) => (now - created) / 1000);
      const size = async (path: string | undefined) => (path ? (await stat(path)).size : 0);
      const due = compactionDue(
        { delta: await size(delta.path), l1: await size(l1Path), base: await size(basePath) },
        deps.compaction ?? COMPACTION,
      );
      if (due !== 'none' && Date.now() >= (deps.files.compactAfter ?? 0)) {
        stats.compacted = due;
        // The batch is committed whatever happens here: a compaction that fails is tried again by a
        // later batch (the delta only grows meanwhile), never retried with this one.
        try {
          const folded = { eTag: stats.eTag, reference };
          const next =
            due === 'base'
              ? await compact(deps.files, ref, folded, commit, cutoff)
              : await compactL1(deps.files, ref, folded, commit);
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
            { err, error_code: 'compaction-failed', base: ref.baseKey, level: due },
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
 * Switches the warehouse to `next` (a new base or level-1 file, already uploaded): an empty delta that
 * names it, committed with `If-Match` on the delta just folded — so the switch happens only if no other
 * batch came in between; otherwise the new file is abandoned. Until then, readers and writers go on
 * with the old files: nothing is visible half-way.
 */
async function switchTo(
  files: WarehouseFiles,
  next: BaseRef,
  basePath: string,
  l1Path: string | undefined,
  folded: { eTag: string; reference: string | null },
  commit: NonNullable<WarehouseDeps['commit']>,
): Promise<string> {
  await files.delta.discard();
  // The reference data is in the folded files: the new delta carries its digest on.
  await writeDelta(
    files.delta.path,
    basePath,
    next,
    async (_c, state) => {
      state.reference = folded.reference;
    },
    undefined,
    l1Path,
  );
  return commit(files.delta, folded.eTag);
}

/**
 * Deletes the files under `prefix` (bases or level-1 files) other than those in `keep`: after a switch,
 * the new one and the one before it (which readers may still hold). A file of another writer, not yet
 * committed, may go too: its switch can no longer succeed (the delta it folded has changed).
 */
async function deleteOthers(bucket: string, prefix: string, keep: readonly (string | undefined)[]) {
  try {
    for (const key of await listKeys(bucket, prefix)) {
      if (!keep.includes(key) && (prefix !== BASES_PREFIX || baseGeneration(key) !== undefined)) {
        await deleteObject(bucket, key);
      }
    }
  } catch (err) {
    logger.warn({ err, error_code: 'cleanup-failed', prefix }, 'old warehouse files not deleted');
  }
}

/**
 * Folds the delta into a new level-1 file (a key of its own), uploads it, and switches to it: what a
 * commit uploads stays a few MB however much the warehouse holds, and the base is not touched.
 */
async function compactL1(
  files: WarehouseFiles,
  ref: BaseRef,
  folded: { eTag: string; reference: string | null },
  commit: NonNullable<WarehouseDeps['commit']>,
): Promise<BaseRef & { eTag: string }> {
  const next: BaseRef = { ...ref, l1Key: newL1Key(ref.generation) };
  const { bases, l1s, delta, bucket } = files;
  const path = l1s.path(next.l1Key!);
  const basePath = bases.path(ref.baseKey);
  let eTag: string;
  try {
    await mkdir(dirname(path), { recursive: true });
    await foldIntoL1(path, basePath, delta.path, ref.l1Key && l1s.path(ref.l1Key));
    await uploadFile(bucket, next.l1Key!, path, DUCKDB_TYPE);
    eTag = await switchTo(files, next, basePath, path, folded, commit);
  } catch (err) {
    await Promise.all([l1s.forget(next.l1Key!), delta.discard()]);
    throw err;
  }
  await deleteOthers(bucket, L1_PREFIX, [next.l1Key, ref.l1Key]);
  return { eTag, ...next };
}

/**
 * Folds the delta (and the level-1 file) into a new base (generation + 1, a key of its own), uploads
 * it, and switches to it. Bases older than the one before (which readers may still hold), or
 * abandoned, are deleted, and level-1 files but the one just folded.
 */
async function compact(
  files: WarehouseFiles,
  ref: BaseRef,
  folded: { eTag: string; reference: string | null },
  commit: NonNullable<WarehouseDeps['commit']>,
  retentionCutoff: Date | undefined,
): Promise<BaseRef & { eTag: string }> {
  const next: BaseRef = { generation: ref.generation + 1, baseKey: newBaseKey(ref.generation + 1) };
  const { bases, l1s, delta, bucket } = files;
  // The local copy of the current base becomes the new one (in place: bases can be large).
  await rename(bases.path(ref.baseKey), bases.path(next.baseKey));
  let eTag: string;
  try {
    await foldDelta(
      bases.path(next.baseKey),
      delta.path,
      next,
      undefined,
      ref.l1Key && l1s.path(ref.l1Key),
      retentionCutoff,
    );
    await uploadFile(bucket, next.baseKey, bases.path(next.baseKey), DUCKDB_TYPE);
    eTag = await switchTo(files, next, bases.path(next.baseKey), undefined, folded, commit);
  } catch (err) {
    // The next batch downloads what the store holds: the delta it committed and the base that names.
    await Promise.all([bases.forget(next.baseKey), delta.discard()]);
    throw err;
  }
  await deleteOthers(bucket, BASES_PREFIX, [next.baseKey, ref.baseKey]);
  await deleteOthers(bucket, L1_PREFIX, [ref.l1Key]);
  return { eTag, ...next };
}
