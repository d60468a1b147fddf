import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { LAKE_TABLES, type LakeTable } from '../functions/contracts/lake-tables.js';
import { sqlString } from '../functions/core/duckdb.js';
import type { QueryResult } from '../functions/warehouse/query.js';

/**
 * `telemetry-pipeline query --engine lake`: the SQL runs with DuckDB over the lake's objects — every
 * month of every factory, not only what the warehouse holds — under the table names and columns the
 * Glue catalogue gives Athena deployed (`LAKE_TABLES`), so the same SQL answers on both. DuckDB here has
 * no S3 extension (none can be downloaded), so the objects are copied into a local cache first, each
 * once per ETag; then the session is shut in to that cache (no other file, no network, configuration
 * locked) and runs one SELECT, as the warehouse queries do.
 */
export interface LakeSource {
  bucket: string;
  /** The cache of this lake's objects. */
  dir: string;
}

interface Listed {
  key: string;
  eTag: string;
}

/** Where an object of the lake goes in the cache: under `dir`, or nowhere (a key that would leave it). */
function cachePath(dir: string, key: string): string | undefined {
  if (key.split('/').some((seg) => seg === '..' || seg === '.' || seg === '') || key.includes('\0')) {
    return undefined;
  }
  const path = resolve(dir, 'objects', key);
  return path.startsWith(resolve(dir, 'objects') + sep) ? path : undefined;
}

/**
 * Brings the cache up to date with the lake's objects under the tables' prefixes: new or changed ones
 * downloaded (8 at a time), gone ones removed. Returns how many were downloaded.
 */
export async function syncLake(source: LakeSource): Promise<{ objects: number; downloaded: number }> {
  const { listObjects, downloadToFile } = await import('../functions/core/s3.js');
  const { forEachConcurrent } = await import('../functions/core/concurrency.js');
  const indexPath = join(source.dir, 'index.json');
  const index: Record<string, string> = JSON.parse(await readFile(indexPath, 'utf8').catch(() => '{}'));
  const listed: Listed[] = [];
  for (const table of LAKE_TABLES) {
    for await (const o of listObjects(source.bucket, table.prefix)) {
      const suffix = table.format === 'parquet' ? '.parquet' : '.json';
      if (o.key.endsWith(suffix) && cachePath(source.dir, o.key)) listed.push({ key: o.key, eTag: o.eTag });
    }
  }
  const wanted = new Set(listed.map((o) => o.key));
  const stale = listed.filter((o) => index[o.key] !== o.eTag);
  await forEachConcurrent(stale, 8, async (o) => {
    const path = cachePath(source.dir, o.key)!;
    await mkdir(dirname(path), { recursive: true });
    index[o.key] = (await downloadToFile(source.bucket, o.key, path)).eTag;
  });
  for (const key of Object.keys(index)) {
    if (wanted.has(key)) continue;
    const path = cachePath(source.dir, key);
    if (path) await rm(path, { force: true });
    delete index[key];
  }
  await mkdir(source.dir, { recursive: true });
  await writeFile(indexPath, JSON.stringify(index));
  return { objects: listed.length, downloaded: stale.length };
}

/**
 * The objects Athena reads for a table: under its prefix, one `name=value` directory per partition
 * column (objects of the earlier `date=` layout are outside the projection there, and here).
 */
function tableGlob(dir: string, table: LakeTable): string {
  const name = `*.${table.format}`;
  return join(dir, 'objects', table.prefix, ...table.partitions.map((p) => `${p}=*`), name);
}

/**
 * A table's view over its objects in the cache, with the Glue table's columns and nothing else: each
 * declared column by name (case-insensitive, as Athena matches JSON fields), cast to its declared type
 * (NULL where no object has it yet), and the partition columns as strings, as Athena's projection gives
 * them. Typed and empty while there are no objects.
 */
async function viewSql(c: DuckDBConnection, dir: string, table: LakeTable): Promise<string> {
  const name = `"${table.name}"`;
  const partitions = table.partitions.map((p) => `CAST(${p} AS VARCHAR) AS ${p}`);
  const glob = sqlString(tableGlob(dir, table));
  const found = await c.runAndReadAll(`SELECT count(*) FROM glob(${glob})`);
  if (Number(found.getRows()[0]![0]) === 0) {
    const columns = table.columns.map((col) => `NULL::${duckdbType(col.type)} AS "${col.name}"`);
    const empty = table.partitions.map((p) => `NULL::VARCHAR AS ${p}`);
    return `CREATE VIEW ${name} AS SELECT ${[...columns, ...empty].join(', ')} WHERE false`;
  }
  const reader = table.format === 'parquet' ? 'read_parquet' : 'read_json';
  const hiveTypes = `{${table.partitions.map((p) => `'${p}': VARCHAR`).join(', ')}}`;
  // JSON strings stay strings, as Athena returns them (DuckDB would otherwise detect timestamps in them).
  const asText = table.format === 'json' ? ", timestampformat = 'none', dateformat = 'none'" : '';
  const source = `${reader}(${glob}, hive_partitioning = true, hive_types = ${hiveTypes}, union_by_name = true${asText})`;
  const present = new Set(
    (await c.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`))
      .getRows()
      .map((r) => String(r[0]).toLowerCase()),
  );
  const columns = table.columns.map((col) => {
    const type = duckdbType(col.type);
    if (!present.has(col.name.toLowerCase())) return `NULL::${type} AS "${col.name}"`;
    // Structs as the files hold them (their fields keep their own case); scalars to the declared type.
    return type === 'JSON' ? `"${col.name}"` : `CAST("${col.name}" AS ${type}) AS "${col.name}"`;
  });
  return `CREATE VIEW ${name} AS SELECT ${[...columns, ...partitions].join(', ')} FROM ${source}`;
}

/** The DuckDB type of a Hive type of `LAKE_TABLES` (for the empty views). */
function duckdbType(hive: string): string {
  const simple: Record<string, string> = {
    timestamp: 'TIMESTAMPTZ',
    string: 'VARCHAR',
    double: 'DOUBLE',
    bigint: 'BIGINT',
    int: 'INTEGER',
    tinyint: 'TINYINT',
    boolean: 'BOOLEAN',
    date: 'DATE',
  };
  return simple[hive] ?? 'JSON';
}

/** Runs one SELECT over the lake (after `syncLake`), at most MAX_ROWS rows, within `timeoutSeconds`. */
export async function queryLake(
  source: LakeSource,
  sql: string,
  options: { numbers?: boolean; timeoutSeconds?: number } = {},
): Promise<QueryResult> {
  const { runQuery, QUERY_TIMEOUT_SECONDS } = await import('../functions/warehouse/query.js');
  const db = await DuckDBInstance.create(':memory:', { autoinstall_known_extensions: 'false' });
  try {
    const c = await db.connect();
    try {
      await c.run(`SET TimeZone = 'UTC'`);
      for (const table of LAKE_TABLES) await c.run(await viewSql(c, source.dir, table));
      // Shut in: the cache and nothing else, no spilling, the configuration locked.
      await c.run(`SET allowed_directories = [${sqlString(`${join(source.dir, 'objects')}${sep}`)}]`);
      await c.run('SET enable_external_access = false');
      await c.run(`SET memory_limit = '1GB'`);
      await c.run(`SET max_temp_directory_size = '0KiB'`);
      await c.run('SET lock_configuration = true');
      return await runQuery(
        c,
        sql,
        undefined,
        options.timeoutSeconds ?? QUERY_TIMEOUT_SECONDS,
        options.numbers,
      );
    } finally {
      c.closeSync();
    }
  } finally {
    db.closeSync();
  }
}
