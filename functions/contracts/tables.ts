/**
 * The canonical tables, declared once: every stage that writes or reads them takes its columns from
 * here — the ETL's normalized Parquet, the enrichment's SELECTs, the warehouse DDL and its migrations,
 * the warehouse message's table name. A new column is one line below plus the code that fills it; the
 * warehouse gains it on its next batch (`ALTER TABLE … ADD COLUMN`), and rows written before read NULL.
 *
 * Each column names the stage that adds it: `normalized` columns are in the ETL's output, `enriched`
 * columns are added by the enrichment, `warehouse` columns by the writer. A stage's output is every
 * column up to its stage, in declaration order. New columns go at the end of their table (a column's
 * position in an upgraded warehouse is where ADD COLUMN put it: the end).
 */

export type Stage = 'normalized' | 'enriched' | 'warehouse';
const STAGES: readonly Stage[] = ['normalized', 'enriched', 'warehouse'];

export interface Column {
  name: string;
  /** DuckDB type. */
  type: string;
  stage: Stage;
  doc: string;
}

const col = (name: string, type: string, stage: Stage, doc: string): Column => ({ name, type, stage, doc });

const REGISTRY: Column[] = [
  col('source_etag', 'VARCHAR', 'enriched', 'ETag of the raw object version the row came from'),
  col('model', 'VARCHAR', 'enriched', 'device model (device registry)'),
  col('line', 'VARCHAR', 'enriched', 'production line (device registry)'),
  col('site', 'VARCHAR', 'enriched', 'site (device registry)'),
  col('criticality', 'VARCHAR', 'enriched', 'critical | high | medium | low (device registry)'),
];

/** Where a data row came from, as both data tables have it (and the UTC day it is partitioned by). */
const SOURCE: Column[] = [
  col('source_key', 'VARCHAR', 'normalized', 'raw object key'),
  col('source_line', 'BIGINT', 'normalized', 'line number in the raw object (first line of its record)'),
  col('date', 'VARCHAR', 'normalized', 'UTC day of ts, the partition value'),
];

export const TABLES = {
  /** One numeric measurement per row. */
  readings: [
    col('ts', 'TIMESTAMPTZ', 'normalized', 'when the value was measured'),
    col('factory', 'VARCHAR', 'normalized', 'factory id (first segment of the raw key)'),
    col('device', 'VARCHAR', 'normalized', 'device id'),
    col('metric', 'VARCHAR', 'normalized', 'what was measured (a unit suffix in a header is split off)'),
    col('value', 'DOUBLE', 'normalized', 'the measurement'),
    col('unit', 'VARCHAR', 'normalized', 'its unit, when known'),
    ...SOURCE,
    ...REGISTRY,
    col('baseline_median', 'DOUBLE', 'enriched', 'median of the baseline the value was scored against'),
    col('baseline_mad', 'DOUBLE', 'enriched', 'median absolute deviation of that baseline'),
    col('anomaly_score', 'DOUBLE', 'enriched', 'robust z-score (value − median) / (1.4826·MAD)'),
    col('is_anomaly', 'BOOLEAN', 'enriched', '|anomaly_score| above the threshold'),
    col('lake_key', 'VARCHAR', 'warehouse', 'the enriched lake object the row was loaded from'),
    col('attributes', 'JSON', 'normalized', 'the line’s other fields (text columns such as a batch id)'),
  ],
  /** One log event or alarm per row. */
  events: [
    col('ts', 'TIMESTAMPTZ', 'normalized', 'when it happened'),
    col('factory', 'VARCHAR', 'normalized', 'factory id'),
    col('device', 'VARCHAR', 'normalized', 'device id, when known'),
    col('severity', 'TINYINT', 'normalized', 'syslog scale: 0 emergency … 7 debug'),
    col('severity_name', 'VARCHAR', 'normalized', 'name of that severity'),
    col('code', 'VARCHAR', 'normalized', 'error or alarm code'),
    col('component', 'VARCHAR', 'normalized', 'component, logger, process'),
    col('message', 'VARCHAR', 'normalized', 'the message (all lines of a multiline record)'),
    col('attributes', 'JSON', 'normalized', 'the record’s other fields'),
    ...SOURCE,
    ...REGISTRY,
    col('category', 'VARCHAR', 'enriched', 'error-code category (catalogue)'),
    col('code_description', 'VARCHAR', 'enriched', 'what the code means (catalogue)'),
    col('recommended_action', 'VARCHAR', 'enriched', 'what to do (catalogue)'),
    col('code_severity', 'TINYINT', 'enriched', 'the code’s default severity (catalogue)'),
    col('effective_severity', 'TINYINT', 'enriched', 'the more severe of severity and code_severity'),
    col('severity_score', 'INTEGER', 'enriched', '0–100: effective severity scaled by device criticality'),
    col('lake_key', 'VARCHAR', 'warehouse', 'the enriched lake object the row was loaded from'),
    col('severity_raw', 'VARCHAR', 'normalized', 'the level as the source wrote it (`W`, `SEVERE`, `<4>`)'),
    col('source_lines', 'INTEGER', 'normalized', 'lines the record spans (1 unless multiline)'),
  ],
  /** One rejected line (or multiline record) per row, with its reason. */
  rejects: [
    col('source_key', 'VARCHAR', 'normalized', 'raw object key'),
    col('source_line', 'BIGINT', 'normalized', 'line number (first line of its record)'),
    col('raw', 'VARCHAR', 'normalized', 'the line as read (at most 4 KiB of an over-long one)'),
    col('reason', 'VARCHAR', 'normalized', 'why: the field and the value'),
    col('factory', 'VARCHAR', 'normalized', 'factory id'),
    col('source_etag', 'VARCHAR', 'warehouse', 'ETag of the raw object version'),
    col('lake_key', 'VARCHAR', 'warehouse', 'the quarantine object the row was loaded from'),
    col('source_lines', 'INTEGER', 'normalized', 'lines the rejected record spans (1 unless multiline)'),
  ],
} as const satisfies Record<string, readonly Column[]>;

export type CanonicalTable = keyof typeof TABLES;
/** The tables of loaded rows (what a file's rule maps it onto). */
export const DATA_TABLES = ['readings', 'events'] as const;
export type DataTable = (typeof DATA_TABLES)[number];

export function isDataTable(name: string): name is DataTable {
  return (DATA_TABLES as readonly string[]).includes(name);
}

/** The columns a stage's output has: those of its stage and the stages before, in declaration order. */
export function columnsAt(table: CanonicalTable, stage: Stage): Column[] {
  const upTo = STAGES.indexOf(stage);
  return TABLES[table].filter((c) => STAGES.indexOf(c.stage) <= upTo);
}

/** The columns a stage adds. */
export function columnsOf(table: CanonicalTable, stage: Stage): Column[] {
  return TABLES[table].filter((c) => c.stage === stage);
}

function quote(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * A SELECT list for a stage's columns of a table, in declaration order, each cast to its declared
 * type: `expressions` must name every column (a missing one is a bug in the stage, thrown at once).
 */
export function selectList(
  table: CanonicalTable,
  columns: Column[],
  expressions: Record<string, string>,
): string {
  const extra = Object.keys(expressions).filter((n) => !columns.some((c) => c.name === n));
  if (extra.length > 0) throw new Error(`${table}: ${extra.join(', ')} not declared in contracts/tables.ts`);
  return columns
    .map((c) => {
      const sql = expressions[c.name];
      if (sql === undefined) throw new Error(`${table}.${c.name}: no expression for a declared column`);
      return `CAST(${sql} AS ${c.type}) AS ${quote(c.name)}`;
    })
    .join(',\n  ');
}

/** `CREATE TABLE IF NOT EXISTS` with every column of the table. */
export function createTableSql(table: CanonicalTable, schema?: string): string {
  const name = schema ? `${schema}.${table}` : table;
  return `CREATE TABLE IF NOT EXISTS ${name} (${TABLES[table].map((c) => `${quote(c.name)} ${c.type}`).join(', ')})`;
}
