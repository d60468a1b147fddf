import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { connectUtc, sqlString } from '../core/duckdb.js';
import { generationOf } from './delta.js';
import { DELTA_KEY, WAREHOUSE_KEY, WarehouseFile } from './warehouse-file.js';

export interface QueryResult {
  columns: string[];
  rows: Record<string, unknown>[];
}

/** A query that DuckDB refused: the message is DuckDB's own (it names the table, column or token). */
export class QueryError extends Error {
  override name = 'QueryError';
}

/** The delta copy is newer than the base copy (a compaction happened between the two downloads). */
export class StaleBaseError extends Error {
  override name = 'StaleBaseError';
}

/** Local copies of the warehouse files; no delta means the base alone. */
export interface WarehouseCopies {
  base: string;
  delta?: string;
}

async function open(path: string): Promise<[DuckDBInstance, DuckDBConnection]> {
  const instance = await DuckDBInstance.create(path, { access_mode: 'READ_ONLY' });
  try {
    return [instance, await connectUtc(instance)];
  } catch (err) {
    instance.closeSync();
    throw err;
  }
}

/**
 * Opens the warehouse read-only: the delta with the base attached as `base` (its views show both),
 * or the base alone when the delta was written for an older base (already folded into it).
 */
async function openCopies(files: WarehouseCopies): Promise<[DuckDBInstance, DuckDBConnection]> {
  if (files.delta) {
    const [instance, c] = await open(files.delta);
    try {
      await c.run(`ATTACH ${sqlString(files.base)} AS base (READ_ONLY)`);
      const [base, delta] = [await generationOf(c, 'base'), await generationOfDelta(c)];
      if (delta === base) return [instance, c];
      if (delta > base)
        throw new StaleBaseError(`the delta is for base generation ${delta}, the copy is ${base}`);
    } catch (err) {
      c.closeSync();
      instance.closeSync();
      throw err;
    }
    c.closeSync();
    instance.closeSync();
  }
  return open(files.base);
}

async function generationOfDelta(c: DuckDBConnection): Promise<number> {
  const db = (await c.runAndReadAll('SELECT current_database()')).getRows()[0]?.[0];
  return generationOf(c, String(db));
}

/**
 * Runs one SQL statement against local copies of the warehouse files, opened READ_ONLY — downloaded
 * copies, never the writer's. Values come back JSON-safe (BIGINT as string where it would lose precision).
 */
export async function queryWarehouse(files: WarehouseCopies, sql: string): Promise<QueryResult> {
  const [instance, c] = await openCopies(files);
  try {
    // No access to files, network or extensions from SQL (no read_csv('/etc/…'), no COPY TO, no
    // ATTACH), and locked so a query cannot SET it back.
    await c.run('SET enable_external_access = false');
    await c.run('SET lock_configuration = true');
    const reader = await c.runAndReadAll(sql).catch((err: Error) => {
      throw new QueryError(err.message, { cause: err });
    });
    return { columns: reader.columnNames(), rows: reader.getRowObjectsJson() as Record<string, unknown>[] };
  } finally {
    c.closeSync();
    instance.closeSync();
  }
}

/**
 * A reader's copies of the warehouse files in `dir`, brought up to date by conditional GETs before
 * each query (only what changed is downloaded: after a batch, the delta).
 */
export class WarehouseReader {
  private readonly base: WarehouseFile;
  private readonly delta: WarehouseFile;

  constructor(
    readonly bucket: string,
    dir: string,
  ) {
    this.base = new WarehouseFile(bucket, dir, WAREHOUSE_KEY);
    this.delta = new WarehouseFile(bucket, dir, DELTA_KEY);
  }

  /** Current copies, or `undefined` before the first batch has been loaded. */
  async refresh(): Promise<WarehouseCopies | undefined> {
    // Base first: a delta read after it is never older than its base, except across a compaction,
    // which queryWarehouse recognises by generation.
    if ((await this.base.checkout('read-only')) === undefined) return undefined;
    const delta = await this.delta.checkout('read-only');
    return { base: this.base.path, delta: delta === undefined ? undefined : this.delta.path };
  }

  /** Runs SQL on current copies; `undefined` before the first batch has been loaded. */
  async query(sql: string): Promise<QueryResult | undefined> {
    for (let attempt = 1; ; attempt++) {
      const copies = await this.refresh();
      if (!copies) return undefined;
      try {
        return await queryWarehouse(copies, sql);
      } catch (err) {
        if (err instanceof StaleBaseError && attempt < 3) continue;
        throw err;
      }
    }
  }
}
