import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Manifest } from '../contracts/manifest.js';
import { DATA_TABLES } from '../contracts/tables.js';
import type { FetchResult } from '../fetch/fetch-source.js';
import { logger } from './logger.js';

/**
 * Every metric the pipeline exports, and the named events that log and count together. Metric names
 * are stable (dashboards and alerts depend on them) and share the `telemetry_pipeline_` prefix.
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'telemetry_pipeline_process_' });

const PREFIX = 'telemetry_pipeline_';

export const metrics = {
  files: new Counter({
    name: `${PREFIX}files_total`,
    help: 'Files processed per stage, factory and outcome (loaded, quarantined, duplicate).',
    labelNames: ['stage', 'factory', 'outcome'] as const,
    registers: [registry],
  }),
  rows: new Counter({
    name: `${PREFIX}rows_total`,
    help: 'Rows written per stage, factory and table.',
    labelNames: ['stage', 'factory', 'table'] as const,
    registers: [registry],
  }),
  rejectedRows: new Counter({
    name: `${PREFIX}rejected_rows_total`,
    help: 'Input lines rejected, per factory and reason.',
    labelNames: ['factory', 'reason'] as const,
    registers: [registry],
  }),
  overRejectRatio: new Counter({
    name: `${PREFIX}files_over_reject_ratio_total`,
    help: 'Files that loaded but rejected more of their lines than limits.maxRejectRatio, per factory.',
    labelNames: ['factory'] as const,
    registers: [registry],
  }),
  bytes: new Counter({
    name: `${PREFIX}bytes_total`,
    help: 'Input bytes read per stage.',
    labelNames: ['stage', 'factory'] as const,
    registers: [registry],
  }),
  stageDuration: new Histogram({
    name: `${PREFIX}stage_duration_seconds`,
    help: 'Seconds to process one file, per stage.',
    labelNames: ['stage'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [registry],
  }),
  enrichUnknown: new Counter({
    name: `${PREFIX}enrich_unknown_total`,
    help: 'Distinct unknown devices or error codes seen per enriched file (kept, with empty enrichment columns).',
    labelNames: ['factory', 'kind'] as const,
    registers: [registry],
  }),
  anomalies: new Counter({
    name: `${PREFIX}anomalies_total`,
    help: 'Readings flagged as anomalous, per factory.',
    labelNames: ['factory'] as const,
    registers: [registry],
  }),
  warehouseRows: new Counter({
    name: `${PREFIX}warehouse_rows_total`,
    help: 'Rows loaded into the warehouse, per table.',
    labelNames: ['table'] as const,
    registers: [registry],
  }),
  warehouseCompactions: new Counter({
    name: `${PREFIX}warehouse_compactions_total`,
    help: 'Warehouse folds after a commit (the delta into a new level-1 file, or into a new base), by outcome: done or failed.',
    labelNames: ['outcome'] as const,
    registers: [registry],
  }),
  endToEndLag: new Histogram({
    name: `${PREFIX}end_to_end_lag_seconds`,
    help: 'Seconds from raw object creation to its rows being queryable in the warehouse.',
    buckets: [0.5, 1, 2, 3, 5, 10, 30, 60, 120, 300, 900, 3600],
    registers: [registry],
  }),
  fetchedFiles: new Counter({
    name: `${PREFIX}fetched_files_total`,
    help: 'Files handled by fetch, per factory, source and outcome (fetched, duplicate, unstable).',
    labelNames: ['factory', 'source', 'outcome'] as const,
    registers: [registry],
  }),
  fetchedBytes: new Counter({
    name: `${PREFIX}fetched_bytes_total`,
    help: 'Bytes fetched into the raw bucket, per factory and source.',
    labelNames: ['factory', 'source'] as const,
    registers: [registry],
  }),
  fetchErrors: new Counter({
    name: `${PREFIX}fetch_errors_total`,
    help: 'Failed fetch runs, per factory, source and kind (unreachable, auth, protocol, transfer, config).',
    labelNames: ['factory', 'source', 'kind'] as const,
    registers: [registry],
  }),
  invocations: new Counter({
    name: `${PREFIX}function_invocations_total`,
    help: 'Function invocations by function and outcome (ok, partial, error).',
    labelNames: ['function', 'outcome'] as const,
    registers: [registry],
  }),
  invocationDuration: new Histogram({
    name: `${PREFIX}function_duration_seconds`,
    help: 'Seconds per function invocation.',
    labelNames: ['function'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
    registers: [registry],
  }),
  coldStarts: new Counter({
    name: `${PREFIX}function_cold_starts_total`,
    help: 'Invocations that started a new container (or local process), per function.',
    labelNames: ['function'] as const,
    registers: [registry],
  }),
  reconcilerRuns: new Counter({
    name: `${PREFIX}reconciler_runs_total`,
    help: 'Reconciler runs by outcome (ok, failed).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  }),
  reconcilerReemitted: new Counter({
    name: `${PREFIX}reconciler_reemitted_total`,
    help: 'ObjectCreated events the reconciler sent again, per queue.',
    labelNames: ['queue'] as const,
    registers: [registry],
  }),
  reconcilerMissing: new Gauge({
    name: `${PREFIX}reconciler_missing_objects`,
    help: 'Objects whose next stage was missing at the last reconciler run, per reason.',
    labelNames: ['reason'] as const,
    registers: [registry],
  }),
  queueDepth: new Gauge({
    name: `${PREFIX}queue_messages`,
    help: 'Messages in a queue (visible + in flight), per queue; DLQs end in -dlq.',
    labelNames: ['queue'] as const,
    registers: [registry],
  }),
};

/** An object was enriched (or a manifest forwarded). */
export function objectEnriched(
  stats: {
    table: string;
    factory: string;
    rows: number;
    unknownDevices: number;
    unknownCodes: number;
    anomalies: number;
    seconds: number;
  },
  key: string,
): void {
  const { factory } = stats;
  metrics.files.inc({ stage: 'enrich', factory, outcome: 'enriched' });
  metrics.rows.inc({ stage: 'enrich', factory, table: stats.table }, stats.rows);
  metrics.enrichUnknown.inc({ factory, kind: 'device' }, stats.unknownDevices);
  metrics.enrichUnknown.inc({ factory, kind: 'code' }, stats.unknownCodes);
  metrics.anomalies.inc({ factory }, stats.anomalies);
  metrics.stageDuration.observe({ stage: 'enrich' }, stats.seconds);
  logger.info({ stage: 'enrich', key, ...stats }, `enrich ${stats.table} of s3://lake/${key}`);
}

/** A file handed on to the warehouse (with or without data to enrich). */
export function fileForwarded(manifestKey: string): void {
  const factory = /^manifests\/factory=([^/]+)\//.exec(manifestKey)?.[1] ?? 'unknown';
  metrics.files.inc({ stage: 'enrich', factory, outcome: 'forwarded' });
}

/** The warehouse loaded a batch. */
export function warehouseLoaded(stats: {
  rows: Record<string, number>;
  lagSeconds: number[];
  objects: number;
  skipped: number;
  seconds: number;
  attempts: number;
  compaction: 'none' | 'done' | 'failed';
}): void {
  for (const [table, n] of Object.entries(stats.rows)) metrics.warehouseRows.inc({ table }, n);
  if (stats.compaction !== 'none') metrics.warehouseCompactions.inc({ outcome: stats.compaction });
  for (const lag of stats.lagSeconds) metrics.endToEndLag.observe(lag);
  metrics.stageDuration.observe({ stage: 'warehouse' }, stats.seconds);
  metrics.files.inc({ stage: 'warehouse', factory: 'all', outcome: 'loaded' }, stats.objects);
  metrics.files.inc({ stage: 'warehouse', factory: 'all', outcome: 'duplicate' }, stats.skipped);
  logger.info(
    { stage: 'warehouse', ...stats, lagSeconds: undefined, maxLagSeconds: Math.max(0, ...stats.lagSeconds) },
    'warehouse batch loaded',
  );
}

/** The reconciler compared the stages and re-emitted what was missing. */
export function reconciled(report: {
  reemitted: Partial<Record<string, number>>;
  missing: Partial<Record<string, number>>;
}): void {
  metrics.reconcilerRuns.inc({ outcome: 'ok' });
  for (const [queue, n = 0] of Object.entries(report.reemitted))
    metrics.reconcilerReemitted.inc({ queue }, n);
  metrics.reconcilerMissing.reset();
  for (const [reason, n = 0] of Object.entries(report.missing)) metrics.reconcilerMissing.set({ reason }, n);
  const total = Object.values(report.reemitted).reduce((a: number, b = 0) => a + b, 0);
  const missing = Object.values(report.missing).reduce((a: number, b = 0) => a + b, 0);
  logger[total > 0 ? 'warn' : 'info'](
    { stage: 'reconcile', ...report },
    total > 0
      ? `reconcile: re-emitted ${total} event(s) a stage had missed`
      : missing > 0
        ? `reconcile: ${missing} object(s) missing a stage, waiting (busy queue or backoff)`
        : 'reconcile: nothing missing',
  );
}

/** A reconciler run failed: nothing was re-emitted this time. */
export function reconcileFailed(err: Error): void {
  metrics.reconcilerRuns.inc({ outcome: 'failed' });
  logger.error({ stage: 'reconcile', error_code: 'reconcile-failed', err }, 'reconcile failed');
}

/** A fetch run finished. */
export function sourceFetched(result: FetchResult): void {
  const [factory = '', source = ''] = result.source.split('/');
  metrics.fetchedFiles.inc({ factory, source, outcome: 'fetched' }, result.fetched.length);
  metrics.fetchedFiles.inc({ factory, source, outcome: 'duplicate' }, result.duplicates);
  metrics.fetchedFiles.inc({ factory, source, outcome: 'unstable' }, result.unstable);
  metrics.fetchedBytes.inc({ factory, source }, result.bytes);
  logger.info({ stage: 'fetch', ...result, fetched: result.fetched.length }, `fetch ${result.source}`);
}

/** A fetch run failed; the message will be retried. */
export function fetchFailed(factory: string, source: string, kind: string, err: Error): void {
  metrics.fetchErrors.inc({ factory, source, kind });
  logger.error(
    { stage: 'fetch', factory, source, error_code: `fetch-${kind}`, err: err.message },
    `fetch ${factory}/${source} failed`,
  );
}

/** A file finished a stage: one log line and the counters, together. */
export function fileProcessed(stage: string, manifest: Manifest, outcome: string): void {
  const { factory } = manifest;
  metrics.files.inc({ stage, factory, outcome });
  if (outcome !== 'duplicate') {
    for (const table of DATA_TABLES) metrics.rows.inc({ stage, factory, table }, manifest.rows[table]);
    for (const [reason, n] of Object.entries(manifest.rejectReasons))
      metrics.rejectedRows.inc({ factory, reason }, n);
    metrics.bytes.inc({ stage, factory }, manifest.bytes);
    metrics.stageDuration.observe({ stage }, manifest.seconds);
    if (manifest.warnings?.length) metrics.overRejectRatio.inc({ factory });
  }
  logger.info(
    {
      stage,
      outcome,
      factory,
      key: manifest.source.key,
      eTag: manifest.source.eTag,
      format: manifest.format,
      lines: manifest.lines,
      rows: manifest.rows,
      seconds: manifest.seconds,
      ...(manifest.warnings?.length ? { warnings: manifest.warnings } : {}),
      ...(manifest.reprocess && outcome !== 'duplicate' ? { reprocess: manifest.reprocess.id } : {}),
      ...(manifest.quarantine
        ? { error_code: manifest.quarantine.code, reason: manifest.quarantine.reason }
        : {}),
    },
    `${stage} ${outcome} s3://${manifest.source.bucket}/${manifest.source.key}`,
  );
}
