import { join } from 'node:path';
import {
  type DuckDBConnection,
  DuckDBInstance,
  type DuckDBPreparedStatement,
  StatementType,
} from '@duckdb/node-api';
import { DELTA_KEY } from '../contracts/keys.js';
import { runtimeConfig } from '../core/config.js';
import { sqlString } from '../core/duckdb.js';
import { baseRefOf } from './delta.js';
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

/** Rows a query returns at most; seconds it may run. */
export const MAX_ROWS = 10_000;
export const QUERY_TIMEOUT_SECONDS = 25;

/** A bound parameter's value: `$name` in the SQL. Timestamps are bound as ISO strings and CAST in SQL. */
export type QueryValue = string | number | boolean | null;
export type QueryParams = Readonly<Record<string, QueryValue>>;

export interface ReaderOptions {
  /** Seconds a query may run before it is interrupted (default QUERY_TIMEOUT_SECONDS). */
  timeoutSeconds?: number;
}

export interface QueryOptions {
  /** Called once the copies are open, as the statement starts (the sandbox arms its kill timer then). */
  onStart?: () => void;
}

/**
 * Copies opened by one delta ETag. Kept open while the delta is current — queries then find DuckDB's
 * caches warm — and closed once a newer delta has replaced them and their last query has ended.
 */
interface OpenCopies {
  instance: DuckDBInstance;
  eTag: string;
  /** Queries running on it. */
  users: number;
  retired: boolean;
}

/**
 * Opens local copies of the warehouse files READ_ONLY — downloaded copies, never the writer's — the
 * delta with the base it names attached as `base` (`fetchBase` gives its local path), then shuts the
 * instance in: no access to files, network or extensions (no read_csv('/etc/…'), COPY TO or ATTACH of
 * a new path), memory bounded, and the configuration locked so a query cannot SET any of it back. All
 * of it is global, so it holds for every connection made on the instance later; so is the time zone,
 * which a connection could no longer SET once the configuration is locked.
 */
async function openCopies(
  deltaPath: string,
  fetchBase: (baseKey: string) => Promise<string>,
): Promise<DuckDBInstance> {
  const instance = await DuckDBInstance.create(deltaPath, { access_mode: 'READ_ONLY' });
  let c: DuckDBConnection | undefined;
  try {
    c = await instance.connect();
    const delta = await baseRefOf(c);
    await c.run(`ATTACH ${sqlString(await fetchBase(delta.baseKey))} AS base (READ_ONLY)`);
    const base = await baseRefOf(c, 'base', delta.baseKey);
    if (delta.baseKey !== base.baseKey) {
      throw new Error(`the delta names base ${delta.baseKey}, the copy given is ${base.baseKey}`);
    }
    await c.run(`SET GLOBAL TimeZone = 'UTC'`);
    await c.run('SET enable_external_access = false');
    await c.run(`SET memory_limit = ${sqlString(runtimeConfig.duckdbMemoryLimit ?? '1GB')}`);
    await c.run(`SET max_temp_directory_size = '0KiB'`);
    await c.run('SET lock_configuration = true');
    return instance;
  } catch (err) {
    instance.closeSync();
    throw err;
  } finally {
    c?.closeSync();
  }
}

/**
 * Prepares `sql` if it is one statement that reads — a SELECT (WITH, FROM, DESCRIBE, SHOW, SUMMARIZE,
 * PRAGMA table_info are SELECTs) — and binds `params` to it. Nothing else: DETACH and a re-ATTACH of an
 * already attached path would pass the external-access switch, and EXPLAIN ANALYZE runs the statement
 * it wraps. Parameters are values, never SQL: a quote in one is a character of the value.
 */
async function prepareRead(
  c: DuckDBConnection,
  sql: string,
  params: QueryParams | undefined,
): Promise<DuckDBPreparedStatement> {
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
  for (const [name, value] of Object.entries(params ?? {})) {
    let index: number;
    try {
      index = prepared.parameterIndex(name);
    } catch {
      // The binding's own message ("Failed to retrieve bind parameter index") names nothing.
      throw new QueryError(`the query has no parameter $${name}`);
    }
    prepared.bindValue(index, value);
  }
  return prepared;
}

/**
 * Runs one statement that reads (see `prepareRead`) on a connection of open copies. At most MAX_ROWS
 * rows come back, within `timeoutSeconds` — as far as DuckDB checks for the interrupt: it does between
 * chunks, not inside one function call (the sandbox's kill timer covers that); values are JSON-safe
 * (BIGINT as string where it would lose precision). The timer starts before the statement is prepared:
 * planning folds constant expressions, so `repeat('x', 2000000000)` is evaluated there already.
 */
async function runQuery(
  c: DuckDBConnection,
  sql: string,
  params: QueryParams | undefined,
  timeoutSeconds: number,
): Promise<QueryResult> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    c.interrupt();
  }, timeoutSeconds * 1000);
  try {
    const prepared = await prepareRead(c, sql, params);
    const reader = await prepared.runAndReadUntil(MAX_ROWS + 1);
    const rows = reader.getRowObjectsJson() as Record<string, unknown>[];
    return {
      columns: reader.columnNames(),
      rows: rows.slice(0, MAX_ROWS),
      ...(rows.length > MAX_ROWS ? { truncated: true } : {}),
    };
  } catch (err) {
    if (err instanceof QueryError && !timedOut) throw err;
    const message = timedOut ? `stopped after ${timeoutSeconds} s` : (err as Error).message;
    throw new QueryError(message, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A reader's copies of the warehouse files in `dir`: the delta brought up to date by a conditional GET
 * before each query (after a batch, that is all that is downloaded again), and the base it names
 * (immutable: downloaded once per compaction). The copies stay open while the delta's ETag is current;
 * each query runs on a connection of its own. Concurrent queries take turns to refresh the copies and
 * open new ones — an open file stays readable whatever replaces it — and then run side by side.
 */
export class WarehouseReader {
  private readonly delta: WarehouseFile;
  private readonly bases: BaseCopies;
  private readonly timeoutSeconds: number;
  private current?: OpenCopies;
  private turn: Promise<unknown> = Promise.resolve();

  constructor(
    readonly bucket: string,
    dir: string,
    options: ReaderOptions = {},
  ) {
    this.delta = new WarehouseFile(bucket, dir, DELTA_KEY);
    this.bases = new BaseCopies(bucket, join(dir, 'bases'));
    this.timeoutSeconds = options.timeoutSeconds ?? QUERY_TIMEOUT_SECONDS;
  }

  /** Current copies, opened, with one more user; `undefined` before the first batch has been loaded. */
  private async acquire(): Promise<OpenCopies | undefined> {
    const mine = this.turn.then(async () => {
      const eTag = await this.delta.checkout('read-only');
      if (eTag !== this.current?.eTag) {
        if (this.current) this.retire(this.current);
        if (eTag !== undefined) {
          const instance = await openCopies(this.delta.path, (key) => this.bases.fetch(key));
          this.current = { instance, eTag, users: 0, retired: false };
        }
      }
      if (this.current) this.current.users++;
      return this.current;
    });
    this.turn = mine.catch(() => undefined);
    return mine;
  }

  private release(open: OpenCopies): void {
    open.users--;
    if (open.retired && open.users === 0) open.instance.closeSync();
  }

  /** No new query will use `open`: it is closed now if none runs on it, else after the last one. */
  private retire(open: OpenCopies): void {
    open.retired = true;
    if (this.current === open) this.current = undefined;
    if (open.users === 0) open.instance.closeSync();
  }

  /** Runs `fn` on a connection to current copies; `undefined` before the first batch has been loaded. */
  private async withCurrent<T>(
    fn: (c: DuckDBConnection) => Promise<T>,
    onStart?: () => void,
  ): Promise<T | undefined> {
    for (let attempt = 1; ; attempt++) {
      let open: OpenCopies | undefined;
      try {
        open = await this.acquire();
      } catch (err) {
        // The base our delta named was deleted: a compaction since the delta was fetched.
        if (err instanceof BaseGoneError && attempt < 3) continue;
        throw err;
      }
      if (!open) return undefined;
      try {
        const c = await open.instance.connect();
        try {
          onStart?.();
          return await fn(c);
        } finally {
          c.closeSync();
        }
      } finally {
        this.release(open);
      }
    }
  }

  /**
   * Runs SQL that reads, with `$name` parameters bound to `params`, on current copies; `undefined`
   * before the first batch has been loaded. DuckDB's refusals and errors are QueryErrors.
   */
  async query(
    sql: string,
    params?: QueryParams,
    options: QueryOptions = {},
  ): Promise<QueryResult | undefined> {
    return this.withCurrent((c) => runQuery(c, sql, params, this.timeoutSeconds), options.onStart);
  }

  /**
   * The whole ledger — lake key → the version loaded and the raw version it came from — for the
   * reconciler; `undefined` before the first batch. Not bound by MAX_ROWS: it is the pipeline's own query.
   */
  async ledger(): Promise<Map<string, { eTag: string; sourceETag: string }> | undefined> {
    const rows = await this.withCurrent(async (c) =>
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

  /** Closes the open copies (at once if no query runs on them, else after the last one). */
  async close(): Promise<void> {
    await this.turn;
    if (this.current) this.retire(this.current);
  }
}
