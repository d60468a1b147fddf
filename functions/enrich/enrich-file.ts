import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import type { FactoriesConfig } from '../contracts/factories.js';
import { enrichedKey, parseDataKey, parseManifestKey } from '../contracts/keys.js';
import { manifestSchema, normalizedOutputs } from '../contracts/manifest.js';
import type { WarehouseFile } from '../contracts/messages.js';
import { fromMetadata, type Provenance, toMetadata } from '../contracts/provenance.js';
import { columnsOf, type DataTable, selectList } from '../contracts/tables.js';
import { forEachConcurrent } from '../core/concurrency.js';
import { sqlString, withConnection } from '../core/duckdb.js';
import { PermanentObjectError } from '../core/errors.js';
import type { Reference, ReferenceStore } from '../core/reference-store.js';
import { appendReference } from '../core/reference-tables.js';
import { downloadToFile, getObjectJson, uploadFile } from '../core/s3.js';
import type { S3ObjectEvent } from '../core/s3-event.js';
import type { BaselineCache } from './baselines.js';

export interface EnrichDeps {
  db: DuckDBInstance;
  tmpDir: string;
  reference: ReferenceStore;
  baselines: BaselineCache;
  settings: FactoriesConfig['enrichment'];
}

export interface EnrichStats {
  table: DataTable;
  rows: number;
  unknownDevices: number;
  unknownCodes: number;
  anomalies: number;
  factory: string;
  seconds: number;
}

/** The device registry's columns, and the raw version's ETag, as both tables have them. */
const REGISTRY_COLUMNS = {
  source_etag: '$source_etag',
  model: 'd.model',
  line: 'd.line',
  site: 'd.site',
  criticality: 'd.criticality',
};

/** Weight of a device's criticality in the severity score; unknown devices count as medium. */
const CRITICALITY_WEIGHT = { critical: 1, high: 0.85, medium: 0.7, low: 0.5 } as const;

/** Reference data as temp tables `ref_devices` and `ref_codes` on this connection. */
export async function loadReference(c: DuckDBConnection, ref: Reference): Promise<void> {
  await c.run(`CREATE OR REPLACE TEMP TABLE ref_devices (factory VARCHAR, device VARCHAR, model VARCHAR, line VARCHAR,
    site VARCHAR, criticality VARCHAR, commissioned DATE)`);
  await c.run(`CREATE OR REPLACE TEMP TABLE ref_codes (code VARCHAR, category VARCHAR, severity TINYINT,
    description VARCHAR, action VARCHAR)`);
  await appendReference(c, ref, { devices: 'ref_devices', errorCodes: 'ref_codes', catalog: 'temp' });
}

async function count(c: DuckDBConnection, sql: string): Promise<number> {
  return Number((await c.runAndReadAll(sql)).getRows()[0]?.[0] ?? 0);
}

/**
 * The rows to enrich: every part (normalized object) of one table of one file, in one temp table `src`
 * with the part's index in `paths` as `part`. One pass over all of them: a file spanning a year is one
 * set of statements, not 366.
 */
async function loadParts(c: DuckDBConnection, paths: readonly string[]): Promise<void> {
  await c.run('CREATE OR REPLACE TEMP TABLE parts (part INTEGER, path VARCHAR)');
  const appender = await c.createAppender('parts', 'main', 'temp');
  for (const [i, path] of paths.entries()) {
    appender.appendInteger(i);
    appender.appendVarchar(path);
    appender.endRow();
  }
  appender.closeSync();
  await c.run(`CREATE OR REPLACE TEMP TABLE src AS
    SELECT s.* EXCLUDE (filename), p.part
    FROM read_parquet([${paths.map((p) => sqlString(p)).join(', ')}], filename = true) s
    JOIN parts p ON p.path = s.filename`);
}

/**
 * Readings: device registry columns, and an anomaly flag from a robust z-score against the
 * per-(factory, device, metric) baseline — the warehouse's published history when it has enough
 * samples, else the current file's own median/MAD. Unknown devices keep NULL registry columns.
 * Reads the parts in `paths`; the rows, with their `part`, are left in the temp table `enriched`.
 */
export async function enrichReadings(
  c: DuckDBConnection,
  input: {
    paths: readonly string[];
    sourceETag: string;
    baselinesPath?: string;
    settings: EnrichDeps['settings'];
  },
): Promise<Omit<EnrichStats, 'table' | 'factory' | 'seconds'>> {
  const { anomalyThreshold, baselineMinSamples } = input.settings;
  await loadParts(c, input.paths);
  await c.run(`CREATE OR REPLACE TEMP TABLE cur AS
    SELECT factory, device, metric, count(*) AS n, median(value) AS median, mad(value) AS mad FROM src GROUP BY ALL`);
  const history = input.baselinesPath
    ? `SELECT factory, device, metric, n, median, mad FROM read_parquet(${sqlString(input.baselinesPath)})`
    : 'SELECT NULL::VARCHAR factory, NULL::VARCHAR device, NULL::VARCHAR metric, NULL::BIGINT n, NULL::DOUBLE median, NULL::DOUBLE mad WHERE false';
  await c.run(`CREATE OR REPLACE TEMP TABLE base AS
    SELECT c.factory, c.device, c.metric,
      CASE WHEN coalesce(h.n, 0) >= ${baselineMinSamples} THEN h.median ELSE c.median END AS median,
      CASE WHEN coalesce(h.n, 0) >= ${baselineMinSamples} THEN h.mad ELSE c.mad END AS mad
    FROM cur c LEFT JOIN (${history}) h USING (factory, device, metric)
    WHERE coalesce(h.n, 0) >= ${baselineMinSamples} OR c.n >= ${baselineMinSamples}`);
  await c.run(
    `CREATE OR REPLACE TEMP TABLE enriched AS
    SELECT s.* EXCLUDE (part), ${selectList('readings', columnsOf('readings', 'enriched'), {
      ...REGISTRY_COLUMNS,
      baseline_median: 'b.median',
      baseline_mad: 'b.mad',
      anomaly_score: '(s.value - b.median) / nullif(1.4826 * b.mad, 0)',
      is_anomaly: `coalesce(abs((s.value - b.median) / nullif(1.4826 * b.mad, 0)) > ${anomalyThreshold}, false)`,
    })}, s.part
    FROM src s
    LEFT JOIN ref_devices d ON d.factory = s.factory AND d.device = s.device
    LEFT JOIN base b ON b.factory = s.factory AND b.device = s.device AND b.metric = s.metric
    ORDER BY s.part, s.ts, s.source_line`,
    { source_etag: input.sourceETag },
  );
  return {
    rows: await count(c, 'SELECT count(*) FROM enriched'),
    unknownDevices: await count(c, 'SELECT count(DISTINCT device) FROM enriched WHERE model IS NULL'),
    unknownCodes: 0,
    anomalies: await count(c, 'SELECT count(*) FROM enriched WHERE is_anomaly'),
  };
}

/**
 * Events: registry and catalogue columns, and a 0–100 severity score: the more severe of the event's
 * own severity and its code's default, scaled by the device's criticality. Like `enrichReadings`, the
 * rows are left in the temp table `enriched`.
 */
export async function enrichEvents(
  c: DuckDBConnection,
  input: { paths: readonly string[]; sourceETag: string },
): Promise<Omit<EnrichStats, 'table' | 'factory' | 'seconds'>> {
  const weight = `CASE d.criticality ${Object.entries(CRITICALITY_WEIGHT)
    .map(([k, w]) => `WHEN '${k}' THEN ${w}`)
    .join(' ')} ELSE ${CRITICALITY_WEIGHT.medium} END`;
  await loadParts(c, input.paths);
  await c.run(
    `CREATE OR REPLACE TEMP TABLE enriched AS
    SELECT s.* EXCLUDE (part), ${selectList('events', columnsOf('events', 'enriched'), {
      ...REGISTRY_COLUMNS,
      category: 'k.category',
      code_description: 'k.description',
      recommended_action: 'k.action',
      code_severity: 'k.severity',
      effective_severity: 'least(coalesce(s.severity, 7), coalesce(k.severity, 7))',
      severity_score: `round(100.0 * (7 - least(coalesce(s.severity, 7), coalesce(k.severity, 7))) / 7 * ${weight})`,
    })}, s.part
    FROM src s
    LEFT JOIN ref_devices d ON d.factory = s.factory AND d.device = s.device
    LEFT JOIN ref_codes k ON k.code = s.code
    ORDER BY s.part, s.ts, s.source_line`,
    { source_etag: input.sourceETag },
  );
  return {
    rows: await count(c, 'SELECT count(*) FROM enriched'),
    unknownDevices: await count(
      c,
      'SELECT count(DISTINCT device) FROM enriched WHERE device IS NOT NULL AND model IS NULL',
    ),
    unknownCodes: await count(
      c,
      'SELECT count(DISTINCT code) FROM enriched WHERE code IS NOT NULL AND category IS NULL',
    ),
    anomalies: 0,
  };
}

const PARQUET = 'FORMAT parquet, COMPRESSION zstd';
/** Parts written with a COPY each; beyond, one partitioned COPY (a file spanning months). */
const COPIES_MAX = 8;

/**
 * Writes the temp table `enriched` out, part `i` to `outs[i]`, rows in (ts, source_line) order. A part
 * with no row gets a file with none, so every normalized object has its enriched one.
 */
export async function writeParts(c: DuckDBConnection, outs: readonly string[], work: string): Promise<void> {
  const columns = 'SELECT * EXCLUDE (part) FROM enriched';
  if (outs.length <= COPIES_MAX) {
    for (const [i, out] of outs.entries()) {
      await c.run(
        `COPY (${columns} WHERE part = ${i} ORDER BY ts, source_line) TO ${sqlString(out)} (${PARQUET})`,
      );
    }
    return;
  }
  const dir = join(work, 'parts');
  await mkdir(dir, { recursive: true });
  await c.run(
    `COPY (SELECT * FROM enriched ORDER BY part, ts, source_line) TO ${sqlString(dir)}
     (${PARQUET}, PARTITION_BY (part), FILENAME_PATTERN 'p_{i}')`,
  );
  const { rename } = await import('node:fs/promises');
  for (const [i, out] of outs.entries()) {
    const written = await readdir(join(dir, `part=${i}`)).catch(() => [] as string[]);
    if (written.length > 1) throw new Error(`part ${i} was written as ${written.length} files`);
    if (written[0]) await rename(join(dir, `part=${i}`, written[0]), out);
    else await c.run(`COPY (${columns} WHERE false) TO ${sqlString(out)} (${PARQUET})`);
  }
}

/** Downloads, uploads: this many at once (a file spanning a year has hundreds of objects). */
const IO_CONCURRENCY = 8;

/**
 * One raw file, from its ETL manifest: every normalized object its run made is enriched — one pass per
 * table, with the reference data and baselines of now — into `enriched/…` (same partitions, same
 * name), and the file is returned for the warehouse, which loads all of it in one commit. A manifest
 * without data (all lines rejected, quarantined) is returned as it is. Replays rewrite the same enriched
 * keys, and the warehouse's ledger loads each (key, ETag) once; a reprocess run is recorded in the
 * enriched objects' metadata; a result that differs has a new ETag, which replaces the rows.
 *
 * A notification of a normalized object (from a bucket configured for an earlier release) is not
 * enriched on its own: its file's manifest, written after it, brings it. `undefined` then.
 */
export async function enrichFile(
  event: S3ObjectEvent,
  deps: EnrichDeps,
): Promise<{ file: WarehouseFile; stats: EnrichStats[] } | undefined> {
  const started = performance.now();
  const manifestKey = parseManifestKey(event.key);
  if (!manifestKey) return undefined;
  const current = await getObjectJson(event.bucket, event.key);
  // Gone (replaced by a later run under the same key is not possible: manifests are keyed by file).
  if (!current) throw new PermanentObjectError(event, 'no-manifest', 'manifest not found');
  const parsed = manifestSchema.safeParse(current.value);
  if (!parsed.success) {
    throw new PermanentObjectError(event, 'bad-manifest', parsed.error.issues[0]?.message ?? 'invalid');
  }
  const file: WarehouseFile = {
    bucket: event.bucket,
    key: event.key,
    eTag: current.eTag,
    enrichedAt: new Date().toISOString(),
    ...(event.reprocess ? { reprocess: event.reprocess } : {}),
  };
  const byTable = new Map<DataTable, string[]>();
  for (const key of normalizedOutputs(parsed.data)) {
    const data = parseDataKey(key);
    if (!data) continue;
    byTable.set(data.table, [...(byTable.get(data.table) ?? []), key]);
  }
  if (byTable.size === 0) return { file, stats: [] };
  const work = await mkdtemp(join(deps.tmpDir, 'enrich-'));
  try {
    const reference = await deps.reference.current();
    const stats: EnrichStats[] = [];
    for (const [table, keys] of byTable) {
      const paths = keys.map((_, i) => join(work, `${table}-${i}.parquet`));
      const outs = keys.map((_, i) => join(work, `${table}-${i}.out.parquet`));
      const provenances: (Provenance & { normalizedETag: string })[] = new Array(keys.length);
      await forEachConcurrent(keys, IO_CONCURRENCY, async (key, i) => {
        const info = await downloadToFile(event.bucket, key, paths[i]!);
        try {
          provenances[i] = { ...fromMetadata(info.metadata), normalizedETag: info.eTag };
        } catch (err) {
          throw new PermanentObjectError(
            { bucket: event.bucket, key },
            'no-provenance',
            (err as Error).message,
            { cause: err },
          );
        }
      });
      const { sourceETag } = provenances[0]!;
      const baselinesPath = table === 'readings' ? await deps.baselines.current() : undefined;
      const s = await withConnection(deps.db, async (c) => {
        await loadReference(c, reference);
        const result =
          table === 'readings'
            ? await enrichReadings(c, { paths, sourceETag, baselinesPath, settings: deps.settings })
            : await enrichEvents(c, { paths, sourceETag });
        await writeParts(c, outs, work);
        return result;
      });
      await forEachConcurrent(keys, IO_CONCURRENCY, async (key, i) => {
        await uploadFile(
          event.bucket,
          enrichedKey(key),
          outs[i]!,
          'application/vnd.apache.parquet',
          // The reprocess run that made this: the one that asked for this enrichment, else the ETL's.
          toMetadata({ ...provenances[i]!, reprocessId: event.reprocess?.id ?? provenances[i]!.reprocessId }),
        );
      });
      stats.push({ ...s, table, factory: manifestKey.factory, seconds: 0 });
    }
    const seconds = (performance.now() - started) / 1000;
    return { file, stats: stats.map((s) => ({ ...s, seconds })) };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
