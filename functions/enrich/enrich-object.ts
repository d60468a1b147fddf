import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import type { FactoriesConfig } from '../contracts/factories.js';
import { enrichedKey, parseDataKey, parseManifestKey } from '../contracts/keys.js';
import type { WarehouseMessage } from '../contracts/messages.js';
import { fromMetadata, toMetadata } from '../contracts/provenance.js';
import { columnsOf, type DataTable, selectList } from '../contracts/tables.js';
import { sqlString, withConnection } from '../core/duckdb.js';
import { PermanentObjectError } from '../core/errors.js';
import type { Reference, ReferenceStore } from '../core/reference-store.js';
import { appendReference } from '../core/reference-tables.js';
import { downloadToFile, uploadFile } from '../core/s3.js';
import type { S3ObjectEvent } from '../core/s3-event.js';
import type { BaselineCache } from './baselines.js';

export interface EnrichDeps {
  db: DuckDBInstance;
  tmpDir: string;
  reference: ReferenceStore;
  baselines: BaselineCache;
  settings: FactoriesConfig['enrichment'];
  send: (message: WarehouseMessage) => Promise<void>;
}

export interface EnrichStats {
  table: DataTable | 'manifest';
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
 * Readings: device registry columns, and an anomaly flag from a robust z-score against the
 * per-(factory, device, metric) baseline — the warehouse's published history when it has enough
 * samples, else the current file's own median/MAD. Unknown devices keep NULL registry columns.
 */
export async function enrichReadings(
  c: DuckDBConnection,
  input: {
    path: string;
    out: string;
    sourceETag: string;
    baselinesPath?: string;
    settings: EnrichDeps['settings'];
  },
): Promise<Omit<EnrichStats, 'table' | 'factory' | 'seconds'>> {
  const { anomalyThreshold, baselineMinSamples } = input.settings;
  await c.run(`CREATE OR REPLACE TEMP TABLE src AS SELECT * FROM read_parquet(${sqlString(input.path)})`);
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
    SELECT s.*, ${selectList('readings', columnsOf('readings', 'enriched'), {
      ...REGISTRY_COLUMNS,
      baseline_median: 'b.median',
      baseline_mad: 'b.mad',
      anomaly_score: '(s.value - b.median) / nullif(1.4826 * b.mad, 0)',
      is_anomaly: `coalesce(abs((s.value - b.median) / nullif(1.4826 * b.mad, 0)) > ${anomalyThreshold}, false)`,
    })}
    FROM src s
    LEFT JOIN ref_devices d ON d.factory = s.factory AND d.device = s.device
    LEFT JOIN base b ON b.factory = s.factory AND b.device = s.device AND b.metric = s.metric
    ORDER BY s.ts, s.source_line`,
    { source_etag: input.sourceETag },
  );
  await c.run(`COPY enriched TO ${sqlString(input.out)} (FORMAT parquet, COMPRESSION zstd)`);
  return {
    rows: await count(c, 'SELECT count(*) FROM enriched'),
    unknownDevices: await count(c, 'SELECT count(DISTINCT device) FROM enriched WHERE model IS NULL'),
    unknownCodes: 0,
    anomalies: await count(c, 'SELECT count(*) FROM enriched WHERE is_anomaly'),
  };
}

/**
 * Events: registry and catalogue columns, and a 0–100 severity score: the more severe of the event's
 * own severity and its code's default, scaled by the device's criticality.
 */
export async function enrichEvents(
  c: DuckDBConnection,
  input: { path: string; out: string; sourceETag: string },
): Promise<Omit<EnrichStats, 'table' | 'factory' | 'seconds'>> {
  const weight = `CASE d.criticality ${Object.entries(CRITICALITY_WEIGHT)
    .map(([k, w]) => `WHEN '${k}' THEN ${w}`)
    .join(' ')} ELSE ${CRITICALITY_WEIGHT.medium} END`;
  await c.run(
    `CREATE OR REPLACE TEMP TABLE enriched AS
    SELECT s.*, ${selectList('events', columnsOf('events', 'enriched'), {
      ...REGISTRY_COLUMNS,
      category: 'k.category',
      code_description: 'k.description',
      recommended_action: 'k.action',
      code_severity: 'k.severity',
      effective_severity: 'least(coalesce(s.severity, 7), coalesce(k.severity, 7))',
      severity_score: `round(100.0 * (7 - least(coalesce(s.severity, 7), coalesce(k.severity, 7))) / 7 * ${weight})`,
    })}
    FROM read_parquet(${sqlString(input.path)}) s
    LEFT JOIN ref_devices d ON d.factory = s.factory AND d.device = s.device
    LEFT JOIN ref_codes k ON k.code = s.code
    ORDER BY s.ts, s.source_line`,
    { source_etag: input.sourceETag },
  );
  await c.run(`COPY enriched TO ${sqlString(input.out)} (FORMAT parquet, COMPRESSION zstd)`);
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

/**
 * One lake notification. Normalized Parquet is enriched into `enriched/…` and announced to the
 * warehouse; an ETL manifest is forwarded as it is. Replays rewrite the same enriched key, and the
 * warehouse's ledger loads each (key, ETag) once. Every notification is enriched (with the reference
 * data and baselines of now), so a reprocess run needs nothing more here than to be recorded in the
 * enriched object's metadata; a result that differs has a new ETag, which replaces the rows.
 */
export async function enrichObject(event: S3ObjectEvent, deps: EnrichDeps): Promise<EnrichStats | undefined> {
  const started = performance.now();
  const manifest = parseManifestKey(event.key);
  if (manifest) {
    if (!event.eTag) throw new PermanentObjectError(event, 'no-etag', 'notification has no ETag');
    await deps.send({ kind: 'manifest', bucket: event.bucket, key: event.key, eTag: event.eTag });
    return {
      table: 'manifest',
      rows: 0,
      unknownDevices: 0,
      unknownCodes: 0,
      anomalies: 0,
      factory: manifest.factory,
      seconds: 0,
    };
  }
  const data = parseDataKey(event.key);
  // Not ours (the topology's filters should not let it through).
  if (data?.layer !== 'normalized') return undefined;
  const { table } = data;
  const work = await mkdtemp(join(deps.tmpDir, 'enrich-'));
  try {
    const path = join(work, 'in.parquet');
    const out = join(work, 'out.parquet');
    const info = await downloadToFile(event.bucket, event.key, path);
    let provenance: ReturnType<typeof fromMetadata>;
    try {
      provenance = fromMetadata(info.metadata);
    } catch (err) {
      throw new PermanentObjectError(event, 'no-provenance', (err as Error).message, { cause: err });
    }
    const { sourceKey, sourceETag, sourceCreatedAt: rawCreatedAt } = provenance;
    const reference = await deps.reference.current();
    const baselinesPath = table === 'readings' ? await deps.baselines.current() : undefined;
    const stats = await withConnection(deps.db, async (c) => {
      await loadReference(c, reference);
      return table === 'readings'
        ? enrichReadings(c, { path, out, sourceETag, baselinesPath, settings: deps.settings })
        : enrichEvents(c, { path, out, sourceETag });
    });
    const key = enrichedKey(event.key);
    const eTag = await uploadFile(
      event.bucket,
      key,
      out,
      'application/vnd.apache.parquet',
      // The reprocess run that made this: the one that asked for this enrichment, else the ETL's.
      toMetadata({
        ...provenance,
        normalizedETag: info.eTag,
        reprocessId: event.reprocess?.id ?? provenance.reprocessId,
      }),
    );
    await deps.send({
      kind: 'data',
      table,
      bucket: event.bucket,
      key,
      eTag,
      rows: stats.rows,
      sourceKey,
      sourceETag,
      rawCreatedAt,
      enrichedAt: new Date().toISOString(),
    });
    return { ...stats, table, factory: data.factory, seconds: (performance.now() - started) / 1000 };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
