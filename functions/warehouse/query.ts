import { join } from 'node:path';
import { type DuckDBConnection, DuckDBInstance, StatementType } from '@duckdb/node-api';
import { DELTA_KEY } from '../contracts/keys.js';
import { runtimeConfig } from '../core/config.js';
import { connectUtc, sqlString } from '../core/duckdb.js';
import { type BaseRef, baseRefOf, readBaseRef } from './delta.js';
import { BaseCopies, BaseGoneError, WarehouseFile } from './warehouse-file.js';

export interface QueryResult {
  columns: string[];
  rows: Record<string, unknown>[];
  /** More rows than `MAX_ROWS`: the rest were not returned. */
  truncated?: boolean;
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

/** Rows a query returns at most; seconds it may run. */
export const MAX_ROWS = 10_000;
export const QUERY_TIMEOUT_SECONDS = 25;

interface OpenWarehouse {
  instance: DuckDBInstance;
  c: DuckDBConnection;
}

/**
 * Opens local copies of the warehouse files READ_ONLY — downloaded copies, never the writer's — the
 * delta with its base attached as `base`, then shuts the session in: no access to files, network or
 * extensions (no read_csv('/etc/…'), COPY TO or ATTACH of a new path), memory bounded, and the
 * configuration locked so a query cannot SET any of it back.
 */
async function openCopies(files: WarehouseCopies): Promise<OpenWarehouse> {
  const instance = await DuckDBInstance.create(files.delta, { access_mode: 'READ_ONLY' });
  let c: DuckDBConnection | undefined;
  try {
    c = await connectUtc(instance);
    await c.run(`ATTACH ${sqlString(files.base)} AS base (READ_ONLY)`);
    const delta = await baseRefOf(c);
    const base = await baseRefOf(c, 'base', delta.baseKey);
    if (delta.baseKey !== base.baseKey) {
      throw new Error(`the delta names base ${delta.baseKey}, the copy given is ${base.baseKey}`);
    }
    await c.run('SET enable_external_access = false');
    await c.run(`SET memory_limit = ${sqlString(runtimeConfig.duckdbMemoryLimit ?? '1GB')}`);
    await c.run(`SET max_temp_directory_size = '0KiB'`);
    await c.run('SET lock_configuration = true');
    return { instance, c };
  } catch (err) {
    c?.closeSync();
    instance.closeSync();
    throw err;
  }
}

/**
 * Runs one statement that reads — a SELECT (WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, PRAGMA table_info
 * are SELECTs) — on an open warehouse. Nothing else: DETACH and a re-ATTACH of an already attached path
 * would pass the external-access switch, and EXPLAIN ANALYZE runs the statement it wraps. At most
 * MAX_ROWS rows come back, within QUERY_TIMEOUT_SECONDS; values are JSON-safe (BIGINT as string where
 * it would lose precision).
 */
async function runQuery({ c }: OpenWarehouse, sql: string): Promise<QueryResult> {
  const prepared = await c
    .extractStatements(sql)
    .then(async (statements) => {
      if (statements.count !== 1) throw new Error(`one statement at a time (got ${statements.count})`);
      return statements.prepare(0);
    })
    .catch((err: Error) => {
      throw new QueryError(err.message, { cause: err });
    });
  if (prepared.statementType !== StatementType.SELECT) {
    throw new QueryError(
      `only queries that read (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE) are allowed, not ${StatementType[prepared.statementType]}`,
    );
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    c.interrupt();
  }, QUERY_TIMEOUT_SECONDS * 1000);
  try {
    const reader = await prepared.runAndReadUntil(MAX_ROWS + 1);
    const rows = reader.getRowObjectsJson() as Record<string, unknown>[];
    return {
      columns: reader.columnNames(),
      rows: rows.slice(0, MAX_ROWS),
      ...(rows.length > MAX_ROWS ? { truncated: true } : {}),
    };
  } catch (err) {
    const message = timedOut ? `stopped after ${QUERY_TIMEOUT_SECONDS} s` : (err as Error).message;
    throw new QueryError(message, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

function close({ instance, c }: OpenWarehouse): void {
  c.closeSync();
  instance.closeSync();
}

/**
 * A reader's copies of the warehouse files in `dir`: the delta brought up to date by a conditional GET
 * before each query (after a batch, that is all that is downloaded again), and the base it names
 * (immutable: downloaded once per compaction). Concurrent queries take turns to refresh and open the
 * copies — an open file stays readable whatever replaces it — and then run side by side.
 */
export class WarehouseReader {
  private readonly delta: WarehouseFile;
  private readonly bases: BaseCopies;
  /** The base the delta names, by the delta's ETag (reading it opens the file). */
  private named?: { eTag: string; ref: BaseRef };
  private turn: Promise<unknown> = Promise.resolve();

  constructor(
    readonly bucket: string,
    dir: string,
  ) {
    this.delta = new WarehouseFile(bucket, dir, DELTA_KEY);
    this.bases = new BaseCopies(bucket, join(dir, 'bases'));
  }

  /** Current copies, or `undefined` before the first batch has been loaded. */
  private async refresh(): Promise<WarehouseCopies | undefined> {
    const eTag = await this.delta.checkout('read-only');
    if (eTag === undefined) return undefined;
    if (this.named?.eTag !== eTag) this.named = { eTag, ref: await readBaseRef(this.delta.path) };
    return { delta: this.delta.path, base: await this.bases.fetch(this.named.ref.baseKey) };
  }

  private async openCurrent(): Promise<OpenWarehouse | undefined> {
    const mine = this.turn.then(async () => {
      const copies = await this.refresh();
      return copies && openCopies(copies);
    });
    this.turn = mine.catch(() => undefined);
    return mine;
  }

  /** Runs `fn` on current copies; `undefined` before the first batch has been loaded. */
  private async withCurrent<T>(fn: (open: OpenWarehouse) => Promise<T>): Promise<T | undefined> {
    for (let attempt = 1; ; attempt++) {
      let open: OpenWarehouse | undefined;
      try {
        open = await this.openCurrent();
      } catch (err) {
        // The base our delta named was deleted: a compaction since the delta was fetched.
        if (err instanceof BaseGoneError && attempt < 3) continue;
        throw err;
      }
      if (!open) return undefined;
      try {
        return await fn(open);
      } finally {
        close(open);
      }
    }
  }

  /** Runs SQL on current copies; `undefined` before the first batch has been loaded. */
  async query(sql: string): Promise<QueryResult | undefined> {
    return this.withCurrent((open) => runQuery(open, sql));
  }

  /**
   * The whole ledger — lake key → the version loaded and the raw version it came from — for the
   * reconciler; `undefined` before the first batch. Not bound by MAX_ROWS: it is the pipeline's own query.
   */
  async ledger(): Promise<Map<string, { eTag: string; sourceETag: string }> | undefined> {
    const rows = await this.withCurrent(async ({ c }) =>
      (await c.runAndReadAll('SELECT lake_key, etag, source_etag FROM ledger')).getRowsJS(),
    );
    return (
      rows &&
      new Map(
        rows.map(([key, eTag, sourceETag]) => [
          String(key),
          { eTag: String(eTag), sourceETag: String(sourceETag ?? '') },
        ]),
      )
    );
  }
}
