import { join } from 'node:path';
import { DuckDBInstance, StatementType } from '@duckdb/node-api';
import { connectUtc, sqlString } from '../core/duckdb.js';
import { type BaseRef, baseRefOf, readBaseRef } from './delta.js';
import { BaseCopies, BaseGoneError, DELTA_KEY, WarehouseFile } from './warehouse-file.js';

export interface QueryResult {
  columns: string[];
  rows: Record<string, unknown>[];
}

/** A query that DuckDB refused: the message is DuckDB's own (it names the table, column or token). */
export class QueryError extends Error {
  override name = 'QueryError';
}

/** Local copies of the warehouse files: the delta, and the base it names. */
export interface WarehouseCopies {
  delta: string;
  base: string;
}

/** What a query may be: it reads, and does nothing else (no ATTACH, DETACH, USE, SET, COPY, CALL…). */
const READING = new Set<StatementType>([StatementType.SELECT, StatementType.EXPLAIN]);

/**
 * Runs one SQL statement against local copies of the warehouse files, opened READ_ONLY — downloaded
 * copies, never the writer's — the delta with its base attached as `base`. Values come back JSON-safe
 * (BIGINT as string where it would lose precision).
 */
export async function queryWarehouse(files: WarehouseCopies, sql: string): Promise<QueryResult> {
  const instance = await DuckDBInstance.create(files.delta, { access_mode: 'READ_ONLY' });
  try {
    const c = await connectUtc(instance);
    try {
      await c.run(`ATTACH ${sqlString(files.base)} AS base (READ_ONLY)`);
      const [delta, base] = [
        await baseRefOf(c, String((await c.runAndReadAll('SELECT current_database()')).getRows()[0]?.[0])),
        await baseRefOf(c, 'base'),
      ];
      if (delta.baseKey !== base.baseKey) {
        throw new Error(`the delta names base ${delta.baseKey}, the copy given is ${base.baseKey}`);
      }
      // No access to files, network or extensions from SQL (no read_csv('/etc/…'), no COPY TO, no
      // ATTACH of a new path), locked so a query cannot SET it back; and only a single reading
      // statement, since DETACH and a re-ATTACH of an already attached path would still be allowed.
      await c.run('SET enable_external_access = false');
      await c.run('SET lock_configuration = true');
      const prepared = await c
        .extractStatements(sql)
        .then(async (statements) => {
          if (statements.count !== 1) {
            throw new Error(`one statement at a time (got ${statements.count})`);
          }
          return statements.prepare(0);
        })
        .catch((err: Error) => {
          throw new QueryError(err.message, { cause: err });
        });
      if (!READING.has(prepared.statementType)) {
        throw new QueryError(
          `only queries that read (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN) are allowed, not ${StatementType[prepared.statementType]}`,
        );
      }
      const reader = await prepared.runAndReadAll().catch((err: Error) => {
        throw new QueryError(err.message, { cause: err });
      });
      return { columns: reader.columnNames(), rows: reader.getRowObjectsJson() as Record<string, unknown>[] };
    } finally {
      c.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}

/**
 * A reader's copies of the warehouse files in `dir`: the delta brought up to date by a conditional GET
 * before each query (after a batch, that is all that is downloaded again), and the base it names
 * (immutable: downloaded once per compaction).
 */
export class WarehouseReader {
  private readonly delta: WarehouseFile;
  private readonly bases: BaseCopies;
  /** The base the delta names, by the delta's ETag (reading it opens the file). */
  private named?: { eTag: string; ref: BaseRef };

  constructor(
    readonly bucket: string,
    dir: string,
  ) {
    this.delta = new WarehouseFile(bucket, dir, DELTA_KEY);
    this.bases = new BaseCopies(bucket, join(dir, 'bases'));
  }

  /** Current copies, or `undefined` before the first batch has been loaded. */
  async refresh(): Promise<WarehouseCopies | undefined> {
    const eTag = await this.delta.checkout('read-only');
    if (eTag === undefined) return undefined;
    if (this.named?.eTag !== eTag) this.named = { eTag, ref: await readBaseRef(this.delta.path) };
    return { delta: this.delta.path, base: await this.bases.fetch(this.named.ref.baseKey) };
  }

  /** Runs SQL on current copies; `undefined` before the first batch has been loaded. */
  async query(sql: string): Promise<QueryResult | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        const copies = await this.refresh();
        return copies && (await queryWarehouse(copies, sql));
      } catch (err) {
        // The base our delta named was deleted: two compactions since it was fetched.
        if (err instanceof BaseGoneError && attempt < 3) continue;
        throw err;
      }
    }
  }
}
