import { isAbsolute, join, normalize } from 'node:path';
import {
  type DuckDBConnection,
  DuckDBDecimalValue,
  DuckDBInstance,
  type DuckDBPreparedStatement,
  DuckDBTypeId,
  type DuckDBValueConverter,
  type Json,
  JsonDuckDBValueConverter,
  StatementType,
} from '@duckdb/node-api';
import { DELTA_KEY } from '../contracts/keys.js';
import { runtimeConfig } from '../core/config.js';
import { sqlString } from '../core/duckdb.js';
import { baseRefOf } from './delta.js';
import { BaseCopies, BaseGoneError, type DownloadObserver, WarehouseFile } from './warehouse-file.js';

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
  /** Told how the download of a warehouse file goes (the CLI draws a progress bar). */
  onDownload?: DownloadObserver;
}

export interface QueryOptions {
  /** Called once the copies are open, as the statement starts (the sandbox arms its kill timer then). */
  onStart?: () => void;
  /** Seconds this query may run (default: the reader's). */
  timeoutSeconds?: number;
  /**
   * Numbers as JSON numbers wherever that is exact (`numbersConverter`); by default BIGINT, HUGEINT and
   * DECIMAL come back as strings (the read API's contract).
   */
  numbers?: boolean;
}

/** The file formats an export writes. */
export const EXPORT_FORMATS = ['parquet', 'csv', 'jsonl'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** Where and how an export writes: `path` is the only file its DuckDB instance may write. */
export interface ExportTarget {
  /** An absolute, normalized local path (`exportPathProblem` says what is refused). */
  path: string;
  format: ExportFormat;
  /** CSV and JSONL only (Parquet compresses its pages itself). Default: none. */
  compression?: 'gzip' | 'zstd';
}

/** DuckDB's progress of a running statement: rows it read of the rows it expects to read. */
export interface ExportProgress {
  percentage: number;
  rowsRead: number;
  rowsTotal: number;
}

export interface ExportOptions extends Pick<QueryOptions, 'onStart' | 'timeoutSeconds'> {
  /** Called about twice a second while the export runs. */
  onProgress?: (progress: ExportProgress) => void;
}

/** The longest time limit a statement may be given (an export's; the CLI's default is 600 s). */
export const MAX_EXPORT_TIMEOUT_SECONDS = 24 * 3600;

/**
 * Why `path` cannot be an export's target, or `undefined` if it can. The path goes into SQL as a
 * string literal (`sqlString`) and into DuckDB's `allowed_paths`: it must be absolute and normalized
 * (what is allowed is exactly what is written), and hold no control characters (C0, DEL, C1), which
 * no quoting makes safe in every place a path is echoed.
 */
export function exportPathProblem(path: string): string | undefined {
  if (!isAbsolute(path) || normalize(path) !== path || path.endsWith('/')) {
    return 'the output must be an absolute, normalized file path';
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what is refused
  if (/[\u0000-\u001f\u007f-\u009f]/.test(path)) return 'the output path holds control characters';
  return undefined;
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
/** Local paths of the files a delta names, by key (downloaded when missing). */
export interface CopyFetchers {
  base: (key: string) => Promise<string>;
  l1: (key: string) => Promise<string>;
}

async function openCopies(deltaPath: string, fetch: CopyFetchers): Promise<DuckDBInstance> {
  const { instance, connection } = await openLocked(deltaPath, fetch);
  connection.closeSync();
  return instance;
}

/**
 * `openCopies`, and the connection that set it up (locked like any other). With `writable` — an
 * export's instance — that one file is the exception to the external-access switch (which must come
 * after it: DuckDB refuses to change allowed_paths once access is off), and the connection reports
 * its statement's progress: a setting of the connection alone, which no later connection could SET.
 */
async function openLocked(
  deltaPath: string,
  fetch: CopyFetchers,
  writable?: string,
): Promise<{ instance: DuckDBInstance; connection: DuckDBConnection }> {
  const instance = await DuckDBInstance.create(deltaPath, { access_mode: 'READ_ONLY' });
  let c: DuckDBConnection | undefined;
  try {
    c = await instance.connect();
    const delta = await baseRefOf(c);
    await c.run(`ATTACH ${sqlString(await fetch.base(delta.baseKey))} AS base (READ_ONLY)`);
    const base = await baseRefOf(c, 'base', delta.baseKey);
    if (delta.baseKey !== base.baseKey) {
      throw new Error(`the delta names base ${delta.baseKey}, the copy given is ${base.baseKey}`);
    }
    // The level-1 file, when the delta names one: its views read it as `l1`.
    if (delta.l1Key !== undefined) {
      await c.run(`ATTACH ${sqlString(await fetch.l1(delta.l1Key))} AS l1 (READ_ONLY)`);
    }
    await c.run(`SET GLOBAL TimeZone = 'UTC'`);
    if (writable !== undefined) {
      const problem = exportPathProblem(writable);
      if (problem) throw new QueryError(problem);
      await c.run(`SET allowed_paths = [${sqlString(writable)}]`);
      await c.run('SET enable_progress_bar = true');
      await c.run('SET enable_progress_bar_print = false');
      // Keeping the order of rows that no ORDER BY orders makes DuckDB hold back every row that comes
      // out of one input chunk until its turn: a cross join's ran out of memory at 11M rows, and runs
      // in 120 MB without. An ORDER BY is still kept.
      await c.run('SET preserve_insertion_order = false');
    }
    await c.run('SET enable_external_access = false');
    await c.run(`SET memory_limit = ${sqlString(runtimeConfig.duckdbMemoryLimit ?? '1GB')}`);
    await c.run(`SET max_temp_directory_size = '0KiB'`);
    await c.run('SET lock_configuration = true');
    return { instance, connection: c };
  } catch (err) {
    c?.closeSync();
    instance.closeSync();
    throw err;
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

const BIG_INTEGERS: ReadonlySet<DuckDBTypeId> = new Set([
  DuckDBTypeId.BIGINT,
  DuckDBTypeId.UBIGINT,
  DuckDBTypeId.HUGEINT,
  DuckDBTypeId.UHUGEINT,
]);

/** Significant digits of an integer (its digits less leading and trailing zeros). */
function significantDigits(n: bigint): number {
  return (n < 0n ? -n : n).toString().replace(/0+$/, '').length;
}

/**
 * JSON values with numbers as numbers wherever the number is exact: BIGINT/HUGEINT (signed or not)
 * within ±(2^53 − 1), DECIMAL with at most 15 significant digits (a double holds every such decimal,
 * and prints it back the same); beyond, the exact digits as a string. Everything else — nested values
 * too — as DuckDB's JSON converter has it.
 */
export const numbersConverter: DuckDBValueConverter<Json> = (value, type, converter) => {
  if (typeof value === 'bigint' && BIG_INTEGERS.has(type.typeId)) {
    const n = Number(value);
    return Number.isSafeInteger(n) ? n : value.toString();
  }
  if (value instanceof DuckDBDecimalValue) {
    return significantDigits(value.value) <= 15 ? Number(value.toString()) : value.toString();
  }
  return JsonDuckDBValueConverter(value, type, converter);
};

/** A timer that interrupts `c`'s statement after `timeoutSeconds`; `timedOut` says whether it fired. */
function interruptAfter(c: DuckDBConnection, timeoutSeconds: number) {
  const state = { timedOut: false, timer: undefined as NodeJS.Timeout | undefined };
  state.timer = setTimeout(() => {
    state.timedOut = true;
    c.interrupt();
  }, timeoutSeconds * 1000);
  return state;
}

/**
 * Runs one statement that reads (see `prepareRead`) on a connection of open copies. At most MAX_ROWS
 * rows come back, within `timeoutSeconds` — as far as DuckDB checks for the interrupt: it does between
 * chunks, not inside one function call (the sandbox's kill timer covers that); values are JSON-safe
 * (BIGINT as string where it would lose precision, or see `numbersConverter`). The timer starts before
 * the statement is prepared: planning folds constant expressions, so `repeat('x', 2000000000)` is
 * evaluated there already.
 */
export async function runQuery(
  c: DuckDBConnection,
  sql: string,
  params: QueryParams | undefined,
  timeoutSeconds: number,
  numbers = false,
): Promise<QueryResult> {
  const interrupt = interruptAfter(c, timeoutSeconds);
  try {
    const prepared = await prepareRead(c, sql, params);
    const reader = await prepared.runAndReadUntil(MAX_ROWS + 1);
    const rows = (
      numbers ? reader.convertRowObjects(numbersConverter) : reader.getRowObjectsJson()
    ) as Record<string, unknown>[];
    return {
      columns: reader.columnNames(),
      rows: rows.slice(0, MAX_ROWS),
      ...(rows.length > MAX_ROWS ? { truncated: true } : {}),
    };
  } catch (err) {
    throw stopped(err, interrupt.timedOut, timeoutSeconds);
  } finally {
    clearTimeout(interrupt.timer);
  }
}

/** A statement's failure as a QueryError: DuckDB's own message, or that it ran out of time. */
function stopped(err: unknown, timedOut: boolean, timeoutSeconds: number): QueryError {
  if (err instanceof QueryError && !timedOut) return err;
  const message = timedOut ? `stopped after ${timeoutSeconds} s` : (err as Error).message;
  return new QueryError(message, { cause: err });
}

/** DuckDB's COPY options for a target: fixed words, nothing from the caller's text. */
function copyOptions(target: ExportTarget): string {
  const compression = `COMPRESSION ${target.compression ?? 'none'}`;
  const options = {
    parquet: ['FORMAT parquet'],
    csv: ['FORMAT csv', 'HEADER true', compression],
    jsonl: ['FORMAT json', compression],
  }[target.format];
  // The target is a new file of the caller's (never replaced in place): no temporary file beside it,
  // which allowed_paths would refuse anyway.
  return [...options, 'USE_TMP_FILE false'].join(', ');
}

/**
 * Writes every row of one statement that reads to `target` with DuckDB's COPY, on a connection whose
 * instance may write that one file and nothing else (`openLocked` with `writable`). The statement is
 * checked by itself first (`prepareRead`: one SELECT), then put inside `COPY (…) TO` on lines of its
 * own (a trailing `--` comment cannot swallow the closing parenthesis; a trailing `;` is dropped), and
 * the whole is checked again to be exactly one COPY. Rows stream from the scan to the file: DuckDB
 * holds a Parquet row group (or a few CSV/JSON chunks) per thread at a time, not the result (a sort or
 * an aggregate still needs its state within the memory limit); rows come in the query's ORDER BY, or
 * else in any order.
 */
async function runExport(
  c: DuckDBConnection,
  sql: string,
  target: ExportTarget,
  timeoutSeconds: number,
  onProgress?: (progress: ExportProgress) => void,
): Promise<number> {
  const interrupt = interruptAfter(c, timeoutSeconds);
  let ticker: NodeJS.Timeout | undefined;
  try {
    let end = sql.length;
    while (end > 0 && /[\s;]/.test(sql[end - 1]!)) end--;
    const select = sql.slice(0, end);
    (await prepareRead(c, select, undefined)).destroySync();
    const copy = `COPY (\n${select}\n) TO ${sqlString(target.path)} (${copyOptions(target)})`;
    const statements = await c.extractStatements(copy).catch((err: Error) => {
      throw new QueryError(`the query cannot be exported: ${err.message}`, { cause: err });
    });
    if (statements.count !== 1) throw new QueryError('the query cannot be exported: not one statement');
    const prepared = await statements.prepare(0);
    if (prepared.statementType !== StatementType.COPY) {
      throw new QueryError('the query cannot be exported: not one statement');
    }
    if (onProgress) {
      ticker = setInterval(() => {
        const p = c.progress;
        if (p.percentage < 0) return;
        onProgress({
          percentage: p.percentage,
          rowsRead: Number(p.rows_processed),
          rowsTotal: Number(p.total_rows_to_process),
        });
      }, 500);
    }
    const result = await prepared.runAndReadAll();
    return Number(result.getRowsJS()[0]?.[0] ?? 0);
  } catch (err) {
    throw stopped(err, interrupt.timedOut, timeoutSeconds);
  } finally {
    clearInterval(ticker);
    clearTimeout(interrupt.timer);
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
  private readonly l1s: BaseCopies;
  private readonly timeoutSeconds: number;
  private current?: OpenCopies;
  private turn: Promise<unknown> = Promise.resolve();

  constructor(
    readonly bucket: string,
    dir: string,
    options: ReaderOptions = {},
  ) {
    this.delta = new WarehouseFile(bucket, dir, DELTA_KEY, options.onDownload);
    this.bases = new BaseCopies(bucket, join(dir, 'bases'), options.onDownload);
    this.l1s = new BaseCopies(bucket, join(dir, 'l1'), options.onDownload);
    this.timeoutSeconds = options.timeoutSeconds ?? QUERY_TIMEOUT_SECONDS;
  }

  private fetchers(): CopyFetchers {
    return { base: (key) => this.bases.fetch(key), l1: (key) => this.l1s.fetch(key) };
  }

  /** Current copies, opened, with one more user; `undefined` before the first batch has been loaded. */
  private async acquire(): Promise<OpenCopies | undefined> {
    const mine = this.turn.then(async () => {
      const eTag = await this.delta.checkout('read-only');
      if (eTag !== this.current?.eTag) {
        if (this.current) this.retire(this.current);
        if (eTag !== undefined) {
          const instance = await openCopies(this.delta.path, this.fetchers());
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
    const timeoutSeconds = options.timeoutSeconds ?? this.timeoutSeconds;
    return this.withCurrent(
      (c) => runQuery(c, sql, params, timeoutSeconds, options.numbers),
      options.onStart,
    );
  }

  /**
   * Writes every row of SQL that reads to `target.path` (see `runExport`); the number of rows, or
   * `undefined` before the first batch has been loaded. It runs on an instance of its own, opened on
   * the current copies with the same limits as a query's, plus the right to write that one file: the
   * limits are global to an instance and locked, so the shared one cannot be given it. The instance
   * is closed when the export ends.
   */
  async export(sql: string, target: ExportTarget, options: ExportOptions = {}): Promise<number | undefined> {
    const problem = exportPathProblem(target.path);
    if (problem) throw new QueryError(problem);
    const timeoutSeconds = options.timeoutSeconds ?? this.timeoutSeconds;
    for (let attempt = 1; ; attempt++) {
      let open: { instance: DuckDBInstance; connection: DuckDBConnection } | undefined;
      try {
        open = await this.openForExport(target.path);
      } catch (err) {
        if (err instanceof BaseGoneError && attempt < 3) continue;
        throw err;
      }
      if (!open) return undefined;
      try {
        options.onStart?.();
        return await runExport(open.connection, sql, target, timeoutSeconds, options.onProgress);
      } finally {
        open.connection.closeSync();
        open.instance.closeSync();
      }
    }
  }

  /** An instance on the current copies that may write `path` (in turn with `acquire`). */
  private async openForExport(
    path: string,
  ): Promise<{ instance: DuckDBInstance; connection: DuckDBConnection } | undefined> {
    const mine = this.turn.then(async () => {
      const eTag = await this.delta.checkout('read-only');
      if (this.current && eTag !== this.current.eTag) this.retire(this.current);
      if (eTag === undefined) return undefined;
      return openLocked(this.delta.path, this.fetchers(), path);
    });
    this.turn = mine.catch(() => undefined);
    return mine;
  }

  /**
   * The whole ledger — lake key → the version loaded and the raw version it came from — for the
   * reconciler; `undefined` before the first batch. Not bound by MAX_ROWS: it is the pipeline's own query.
   */
  async ledger(): Promise<Map<string, { eTag: string; sourceETag: string; kind: string }> | undefined> {
    const rows = await this.withCurrent(async (c) =>
      (await c.runAndReadAll('SELECT lake_key, etag, source_etag, kind FROM ledger')).getRowsJS(),
    );
    return (
      rows &&
      new Map(
        rows.map(([key, eTag, sourceETag, kind]) => [
          String(key),
          { eTag: String(eTag), sourceETag: String(sourceETag ?? ''), kind: String(kind) },
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
