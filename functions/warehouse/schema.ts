import { ERROR_SEVERITY, healthScoreSql, WARNING_SEVERITY } from '../contracts/health.js';
import {
  type CanonicalTable,
  type Column,
  createTableSql,
  TABLES as DECLARED_TABLES,
} from '../contracts/tables.js';

/**
 * The declared columns of the canonical tables (`readings`, `events`, `rejects`: contracts/tables.ts,
 * the one place a column is added). Functions that create or migrate them take a `Declarations`
 * argument so that a test can declare a column the release does not have.
 */
export type Declarations = Readonly<Record<CanonicalTable, readonly Column[]>>;
export const DECLARED: Declarations = DECLARED_TABLES;
export const CANONICAL_TABLES = Object.keys(DECLARED_TABLES) as CanonicalTable[];

function isCanonical(table: string): table is CanonicalTable {
  return (CANONICAL_TABLES as string[]).includes(table);
}

function quote(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * The ledger's kind for the manifest version of a file past the warehouse's retention
 * (`WAREHOUSE_RETENTION_DAYS`): dropped at a compaction, or never loaded. Its rows, rejects and
 * manifest row are gone; the ledger row says the version is accounted for, so the writer skips it and
 * the reconciler neither reads its manifest nor sends it again.
 */
export const RETIRED = 'retired';

/**
 * The warehouse schema. Tables are created if missing; views are replaced on every write so a new
 * release's definitions take effect on the next batch. The canonical tables come from their
 * declaration; a warehouse made before a column was declared gains it from `addMissingColumns` in
 * delta.ts (the delta's `added.<t>` on every batch, the base at its next compaction), and the views
 * read both by name.
 */
export const TABLES = [
  ...CANONICAL_TABLES.map((t) => createTableSql(t)),
  // One row per lake object loaded: the same (lake_key, etag) is loaded once. Kind `retired`: a
  // manifest version of a file past the warehouse's retention, nothing of which is loaded (RETIRED).
  `CREATE TABLE IF NOT EXISTS ledger (
    lake_key VARCHAR, etag VARCHAR, kind VARCHAR, source_key VARCHAR, source_etag VARCHAR,
    raw_created_at TIMESTAMPTZ, rows BIGINT, enriched_at TIMESTAMPTZ, loaded_at TIMESTAMPTZ)`,
  // One row per raw file version: its ETL manifest.
  `CREATE TABLE IF NOT EXISTS manifests (
    source_key VARCHAR, source_etag VARCHAR, factory VARCHAR, status VARCHAR, format VARCHAR, "table" VARCHAR,
    bytes BIGINT, lines_total BIGINT, lines_loaded BIGINT, lines_rejected BIGINT, lines_blank BIGINT,
    lines_header BIGINT, rows_readings BIGINT, rows_events BIGINT, quarantine_reason VARCHAR,
    raw_created_at TIMESTAMPTZ, etl_started_at TIMESTAMPTZ, etl_finished_at TIMESTAMPTZ, etl_seconds DOUBLE,
    manifest_key VARCHAR)`,
  `CREATE TABLE IF NOT EXISTS devices (
    factory VARCHAR, device VARCHAR, model VARCHAR, line VARCHAR, site VARCHAR, criticality VARCHAR,
    commissioned DATE)`,
  `CREATE TABLE IF NOT EXISTS error_codes (
    code VARCHAR, category VARCHAR, severity TINYINT, description VARCHAR, action VARCHAR)`,
  // Per-(factory, device, metric) robust statistics over recent history, published for enrichment.
  `CREATE TABLE IF NOT EXISTS baselines (
    factory VARCHAR, device VARCHAR, metric VARCHAR, n BIGINT, median DOUBLE, mad DOUBLE, updated_at TIMESTAMPTZ)`,
];

export const VIEWS = [
  // The ledger joined with each file's manifest: rows, rejects, per-stage timestamps, end-to-end lag.
  `CREATE OR REPLACE VIEW files AS
    SELECT l.lake_key, l.etag, l.kind, l.rows, l.source_key, l.source_etag, m.factory, m.status, m.format,
      m.lines_total, m.lines_loaded, m.lines_rejected, m.rows_readings, m.rows_events,
      l.raw_created_at, m.etl_started_at, m.etl_finished_at, l.enriched_at, l.loaded_at,
      epoch(l.loaded_at - l.raw_created_at) AS end_to_end_seconds
    FROM ledger l LEFT JOIN manifests m USING (source_key, source_etag) WHERE l.kind <> '${RETIRED}'`,
  // One row per raw file: did everything it produced reach the warehouse?
  `CREATE OR REPLACE VIEW pipeline_files AS
    SELECT m.source_key, m.source_etag, m.factory, m.status, m.format, m."table", m.bytes,
      m.lines_total, m.lines_loaded, m.lines_rejected, m.lines_blank, m.lines_header,
      m.rows_readings + m.rows_events AS rows_expected, coalesce(l.rows_loaded, 0) AS rows_loaded,
      coalesce(l.rows_loaded, 0) = m.rows_readings + m.rows_events AS complete, m.quarantine_reason,
      m.raw_created_at, m.etl_finished_at, l.last_loaded_at AS loaded_at,
      epoch(l.last_loaded_at - m.raw_created_at) AS end_to_end_seconds
    FROM manifests m
    LEFT JOIN (SELECT source_key, source_etag, sum(rows) AS rows_loaded, max(loaded_at) AS last_loaded_at
               FROM ledger WHERE kind IN ('readings', 'events') GROUP BY ALL) l USING (source_key, source_etag)`,
  // Health per device and hour (contracts/health.ts).
  `CREATE OR REPLACE VIEW device_health_hourly AS
    WITH r AS (
      SELECT factory, device, date_trunc('hour', ts) AS hour, count(*) AS readings,
        count(*) FILTER (WHERE is_anomaly) AS anomalies
      FROM readings GROUP BY ALL),
    e AS (
      SELECT factory, device, date_trunc('hour', ts) AS hour,
        count(*) FILTER (WHERE effective_severity <= ${ERROR_SEVERITY}) AS error_events,
        count(*) FILTER (WHERE effective_severity = ${WARNING_SEVERITY}) AS warning_events,
        max(severity_score) AS max_severity_score
      FROM events WHERE device IS NOT NULL GROUP BY ALL)
    SELECT factory, device, hour, d.model, d.line, d.criticality,
      coalesce(r.readings, 0) AS readings, coalesce(r.anomalies, 0) AS anomalies,
      coalesce(e.error_events, 0) AS error_events, coalesce(e.warning_events, 0) AS warning_events,
      e.max_severity_score,
      ${healthScoreSql('coalesce(r.anomalies, 0)', 'coalesce(e.error_events, 0)', 'coalesce(e.warning_events, 0)')} AS health_score
    FROM r FULL OUTER JOIN e USING (factory, device, hour)
    LEFT JOIN devices d USING (factory, device)`,
  // Alarms per day and code (warnings and worse, or any event with a code).
  `CREATE OR REPLACE VIEW alarms_daily AS
    SELECT factory, CAST(timezone('UTC', ts) AS DATE) AS day, code,
      any_value(category) AS category, any_value(code_description) AS description,
      any_value(recommended_action) AS recommended_action,
      count(*) AS events, count(DISTINCT device) AS devices,
      min(effective_severity) AS worst_severity, max(severity_score) AS max_severity_score,
      min(ts) AS first_seen, max(ts) AS last_seen
    FROM events WHERE code IS NOT NULL OR effective_severity <= 4
    GROUP BY ALL`,
];

/** Every table TABLES creates. */
export const TABLE_NAMES = [
  'readings',
  'events',
  'rejects',
  'ledger',
  'manifests',
  'devices',
  'error_codes',
  'baselines',
] as const;
export type TableName = (typeof TABLE_NAMES)[number];

/**
 * One row: the base a delta applies to (and the level-1 file, `l1_key`, when there is one); in a base
 * or level-1 file, the base. `generation` counts compactions.
 */
export const META =
  'CREATE TABLE IF NOT EXISTS warehouse_meta (generation BIGINT, base_key VARCHAR, l1_key VARCHAR)';
/** A delta or base written before there were level-1 files lacks the column (read as NULL). */
export const META_L1 = 'ALTER TABLE main.warehouse_meta ADD COLUMN IF NOT EXISTS l1_key VARCHAR';

/**
 * The delta file's own tables, created from the base attached as `base`: `added.<t>` holds the rows
 * added since the base was written, `removed.<t>` the rowids of base rows deleted since, and
 * `removed_l1.<t>` the rowids of rows of the level-1 file's `added.<t>` deleted since; `delta_state`
 * what the writer keeps between batches (digests of the views and the reference data it last wrote).
 * A level-1 file has the same tables (its `removed_l1` stay empty).
 */
export function deltaTables(): string[] {
  return [
    'CREATE SCHEMA IF NOT EXISTS added',
    'CREATE SCHEMA IF NOT EXISTS removed',
    'CREATE SCHEMA IF NOT EXISTS removed_l1',
    META,
    META_L1,
    'CREATE TABLE IF NOT EXISTS main.delta_state (views VARCHAR, reference VARCHAR)',
    ...TABLE_NAMES.flatMap((t) => [
      `CREATE TABLE IF NOT EXISTS added.${t} AS SELECT * FROM base.main.${t} LIMIT 0`,
      `CREATE TABLE IF NOT EXISTS removed.${t} (rid BIGINT)`,
      `CREATE TABLE IF NOT EXISTS removed_l1.${t} (rid BIGINT)`,
    ]),
  ];
}

/**
 * The columns declared for `table` that a table of that name lacks (`existing`: the names it has, in
 * lower case: DuckDB's names are case-insensitive), in declaration order.
 */
export function missingColumns(
  table: CanonicalTable,
  existing: ReadonlySet<string>,
  declared: Declarations = DECLARED,
): Column[] {
  return declared[table].filter((c) => !existing.has(c.name.toLowerCase()));
}

/**
 * Adds a declared column to the table `qualified`. ADD COLUMN appends, so a table made before some
 * columns were declared ends with them in their declared order; the rows it held read NULL in them.
 */
export function addColumnSql(qualified: string, column: Column): string {
  return `ALTER TABLE ${qualified} ADD COLUMN IF NOT EXISTS ${quote(column.name)} ${column.type}`;
}

/**
 * Which row sets a view must subtract: `base` (the delta's and the level-1 file's removed base rows)
 * and `l1` (the delta's removed level-1 rows). A table missing from a set has no such rows, and its
 * view skips that anti-join (the writer knows, when it finishes a batch); by default every view has both.
 */
export interface Removals {
  base?: ReadonlySet<TableName>;
  l1?: ReadonlySet<TableName>;
}

/**
 * One view per table, under the table's name: the base's rows (less the removed ones), then those the
 * level-1 file added (less the removed ones) when `l1` — a level-1 file is attached as `l1` — then the
 * added ones.
 *
 * By name, not by position: a base is never changed, so one written before a column was declared lacks
 * it while `added.<t>` has it; UNION ALL BY NAME reads the base's rows with NULL there. The canonical
 * tables are then listed in their declared order, whatever order the files hold them in (ADD COLUMN
 * appends): that is what `SELECT *` shows the query API's users, what the derived views bind to, and
 * it changes the views' text — hence their digest, and the writer rewrites them — whenever the
 * declaration changes. (A stored view over a table that gained a column no longer binds.) A column the
 * files have and the declaration no longer names is not shown.
 */
export function tableViews(
  l1: boolean,
  removals?: Removals,
  kind: 'TEMP' | '' = '',
  declared: Declarations = DECLARED,
): string[] {
  return TABLE_NAMES.map((t) => {
    const removedBase = l1
      ? `SELECT rid FROM removed.${t} UNION ALL SELECT rid FROM l1.removed.${t}`
      : `SELECT rid FROM removed.${t}`;
    const parts = [
      `SELECT * FROM base.main.${t}${removals?.base && !removals.base.has(t) ? '' : ` WHERE rowid NOT IN (${removedBase})`}`,
      ...(l1
        ? [
            `SELECT * FROM l1.added.${t}${removals?.l1 && !removals.l1.has(t) ? '' : ` WHERE rowid NOT IN (SELECT rid FROM removed_l1.${t})`}`,
          ]
        : []),
      `SELECT * FROM added.${t}`,
    ];
    const union = parts.join('\n        UNION ALL BY NAME ');
    const body = isCanonical(t)
      ? `SELECT ${declared[t].map((c) => quote(c.name)).join(', ')} FROM (${union})`
      : union;
    return `CREATE OR REPLACE ${kind} VIEW ${kind ? '' : 'main.'}${t} AS ${body}`;
  });
}

/** The delta file's views: the tables (`tableViews`), then VIEWS over those. */
export function deltaViews(l1: boolean, removals: Removals, declared: Declarations = DECLARED): string[] {
  return [...tableViews(l1, removals, '', declared), ...VIEWS];
}
