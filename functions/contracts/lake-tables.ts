import { type CanonicalTable, type Column, columnsAt, type Stage } from './tables.js';

/**
 * The lake as tables: what the Glue catalogue declares for Athena (stacks/pipeline.ts) and what
 * `telemetry-pipeline query --engine lake` reads with DuckDB, by the same names, so one SQL runs on
 * both. Columns come from the canonical declaration (contracts/tables.ts) at the stage that writes the
 * objects; the partition columns are the key layout's (contracts/keys.ts): `factory`, and `month` for
 * data objects.
 */
export interface LakeTable {
  name: string;
  /** Key prefix in the lake bucket, ending in `/`. */
  prefix: string;
  format: 'parquet' | 'json';
  /** Partition columns, outermost first (Hive `name=value` path segments). */
  partitions: readonly ('factory' | 'month')[];
  /** Data columns (without the partition columns), as Hive/Athena types. */
  columns: readonly { name: string; type: string }[];
}

/** DuckDB type → Hive type (what Glue declares and Athena reads from the Parquet the pipeline writes). */
const HIVE: Record<string, string> = {
  TIMESTAMPTZ: 'timestamp',
  VARCHAR: 'string',
  JSON: 'string',
  DOUBLE: 'double',
  BIGINT: 'bigint',
  INTEGER: 'int',
  TINYINT: 'tinyint',
  BOOLEAN: 'boolean',
  DATE: 'date',
};

export function hiveType(duckdbType: string): string {
  const t = HIVE[duckdbType];
  if (!t) throw new Error(`no Hive type for the DuckDB type ${duckdbType}`);
  return t;
}

const partitioned = (cols: Column[], partitions: readonly string[]) =>
  cols.filter((c) => !partitions.includes(c.name)).map((c) => ({ name: c.name, type: hiveType(c.type) }));

function parquetTable(
  name: string,
  prefix: string,
  table: CanonicalTable,
  stage: Stage,
  partitions: LakeTable['partitions'],
): LakeTable {
  return {
    name,
    prefix,
    format: 'parquet',
    partitions,
    columns: partitioned(columnsAt(table, stage), partitions),
  };
}

export const LAKE_TABLES: readonly LakeTable[] = [
  parquetTable('readings', 'enriched/readings/', 'readings', 'enriched', ['factory', 'month']),
  parquetTable('events', 'enriched/events/', 'events', 'enriched', ['factory', 'month']),
  parquetTable('normalized_readings', 'normalized/readings/', 'readings', 'normalized', ['factory', 'month']),
  parquetTable('normalized_events', 'normalized/events/', 'events', 'normalized', ['factory', 'month']),
  parquetTable('rejects', 'quarantine/rejects/', 'rejects', 'normalized', ['factory']),
  {
    // The ETL's per-file record (contracts/manifest.ts): the accounting of every file, whatever it made.
    name: 'manifests',
    prefix: 'manifests/',
    format: 'json',
    partitions: ['factory'],
    columns: [
      { name: 'id', type: 'string' },
      { name: 'status', type: 'string' },
      {
        name: 'source',
        type: 'struct<bucket:string,key:string,etag:string,size:bigint,createdat:string>',
      },
      { name: 'format', type: 'string' },
      { name: 'table', type: 'string' },
      {
        name: 'lines',
        type: 'struct<total:bigint,loaded:bigint,rejected:bigint,blank:bigint,header:bigint>',
      },
      { name: 'rows', type: 'struct<readings:bigint,events:bigint>' },
      { name: 'bytes', type: 'bigint' },
      { name: 'seconds', type: 'double' },
      { name: 'startedat', type: 'string' },
      { name: 'finishedat', type: 'string' },
    ],
  },
];

/** The first month Athena's partition projection enumerates (the lake's month partitions from then on). */
export const PROJECTION_FROM_MONTH = '2020-01';
