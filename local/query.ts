import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import Table from 'cli-table3';
import type { ExportFormat, ExportTarget, QueryResult } from '../functions/warehouse/query.js';
import type { SandboxedReader } from '../functions/warehouse/query-sandbox.js';
import type { DownloadObserver } from '../functions/warehouse/warehouse-file.js';
import { byteProgress } from './byte-progress.js';
import { formatBytes } from './cli-format.js';
import { exportFunctionEnv, localSettings } from './settings.js';
import type { Target } from './target.js';

export type QueryFormat = 'table' | 'json' | 'csv';

/**
 * Characters a terminal acts on instead of showing: C0 (ESC starts ANSI sequences), DEL, C1 (CSI
 * U+009B is ESC [ on some terminals), the line and paragraph separators, and the bidirectional
 * controls (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069) that reorder what follows them on the line.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what is matched
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * `s` with the characters a terminal would act on shown as escapes: `\x1b`, `\u202e`, `\n`.
 * `lines`: line feeds and tabs kept (messages of several lines).
 */
export function escapeControls(s: string, opts: { lines?: boolean } = {}): string {
  return s.replace(CONTROLS, (ch) => {
    if (opts.lines && (ch === '\n' || ch === '\t')) return ch;
    const code = ch.charCodeAt(0);
    return (
      NAMED[ch] ??
      (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`)
    );
  });
}

function csvField(v: unknown): string {
  const s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function cellText(v: unknown): string {
  const s = v === null || v === undefined ? 'NULL' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return escapeControls(s);
}

/**
 * Renders rows for the terminal (table: control characters escaped, so a value cannot move the
 * cursor, recolour or reorder the screen), or for scripts (a JSON array; RFC 4180 CSV), which carry
 * the values as they are.
 */
export function formatRows(columns: string[], rows: Record<string, unknown>[], format: QueryFormat): string {
  if (format === 'json') return `${JSON.stringify(rows, null, 2)}\n`;
  if (format === 'csv') {
    return `${[columns.map(csvField).join(','), ...rows.map((r) => columns.map((c) => csvField(r[c])).join(','))].join('\r\n')}\r\n`;
  }
  const table = new Table({ head: columns.map((c) => escapeControls(c)), style: { head: [], border: [] } });
  for (const r of rows) table.push(columns.map((c) => cellText(r[c])));
  return `${table.toString()}\n(${rows.length} row${rows.length === 1 ? '' : 's'})\n`;
}

/** What `query` prints on stderr when the rows were cut at MAX_ROWS. */
export const TRUNCATED_WARNING =
  'telemetry-pipeline: these are the first 10,000 rows of more; use `telemetry-pipeline export "<sql>" --output <file>` for all\n';

/**
 * `telemetry-pipeline query`: brings the local copies of the target's warehouse files up to date
 * (conditional GETs, cached under the data folder) and runs the SQL against them, read-only, in the
 * query process (its limits hold whatever the SQL calls); stops that process when done, so the CLI
 * exits. The writer's copies are never opened. `--json` has numbers as numbers where exact.
 */
export async function runQuery(
  sql: string,
  format: QueryFormat,
  target?: Target,
  engine: QueryEngine = 'warehouse',
): Promise<{ text: string; truncated: boolean }> {
  if (!target) exportFunctionEnv(localSettings(), {});
  try {
    const result =
      engine === 'lake'
        ? await queryWholeLake(sql, { target, numbers: format === 'json' })
        : await queryLocal(sql, { target, numbers: format === 'json' });
    return { text: formatRows(result.columns, result.rows, format), truncated: result.truncated === true };
  } catch (err) {
    // DuckDB's messages quote the values they choke on: a terminal must not act on those either.
    throw new Error(escapeControls((err as Error).message, { lines: true }), { cause: err });
  } finally {
    await closeLocalQueries();
  }
}

/** What `query` runs on: the warehouse (recent, enriched, fast) or the whole lake (`--engine lake`). */
export const QUERY_ENGINES = ['warehouse', 'lake'] as const;
export type QueryEngine = (typeof QUERY_ENGINES)[number];

/**
 * The SQL over the lake of `target` (default: the local stack): its objects copied into a cache of the
 * target's own under the data folder (`lake-cache`, or `lake-cache-<lake bucket>` for a stage), then
 * read by DuckDB under the table names Athena has deployed (see `local/lake-query.ts`).
 */
export async function queryWholeLake(
  sql: string,
  options: { target?: Target | undefined; numbers?: boolean } = {},
): Promise<QueryResult> {
  const settings = localSettings();
  const { runtimeConfig } = await import('../functions/core/config.js');
  const stage = options.target?.kind === 'stage';
  const bucket = options.target?.buckets.lake ?? runtimeConfig.buckets.lake;
  const source = { bucket, dir: join(settings.PIPELINE_DATA, stage ? `lake-cache-${bucket}` : 'lake-cache') };
  const { queryLake, syncLake } = await import('./lake-query.js');
  const { QueryError } = await import('../functions/warehouse/query.js');
  try {
    await syncLake(source);
  } catch (err) {
    throw new Error(
      `cannot read the lake in s3://${bucket}${stage ? ` of ${options.target!.label}` : ` at ${settings.s3Endpoint} (is \`npm start\` running?)`}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return queryLake(source, sql, { numbers: options.numbers === true }).catch((err: Error) => {
    throw err instanceof QueryError
      ? err
      : new Error(`query over the lake failed: ${err.message}`, { cause: err });
  });
}

/** Where a target's warehouse is, where its copies are cached, and what to say when it is unreadable. */
interface Source {
  bucket: string;
  dir: string;
  unreadable: (err: Error) => Error;
}

/**
 * The warehouse of `target` (default: the local stack, with the environment already exported). Each
 * target has a cache of its own under the data folder: the local stack's in `query-cache`, a stage's
 * in `query-cache-<its warehouse bucket>` (bucket names are valid folder names, and a stage deployed
 * again with a new bucket starts a new cache).
 */
async function sourceOf(target: Target | undefined): Promise<Source> {
  const settings = localSettings();
  if (target?.kind === 'stage') {
    const bucket = target.buckets.warehouse;
    return {
      bucket,
      dir: join(settings.PIPELINE_DATA, `query-cache-${bucket}`),
      unreadable: (err) =>
        new Error(
          `cannot read the warehouse of ${target.label} in s3://${bucket} (region ${target.region}): ${err.message}. Check the network, and that the AWS credentials (AWS_PROFILE, \`aws sso login\`, AWS_ACCESS_KEY_ID) can read that bucket`,
        ),
    };
  }
  const { runtimeConfig } = await import('../functions/core/config.js');
  const bucket = target?.buckets.warehouse ?? runtimeConfig.buckets.warehouse;
  return {
    bucket,
    dir: join(settings.PIPELINE_DATA, 'query-cache'),
    unreadable: (err) =>
      new Error(
        `cannot read the warehouse in s3://${bucket} at ${settings.s3Endpoint} (is \`npm start\` running?): ${err.message}`,
      ),
  };
}

/** This process's query process, on one target's cache: started at the first query, kept for the next. */
let local: { dir: string; reader: Promise<SandboxedReader> } | undefined;

async function readerFor(source: Source): Promise<SandboxedReader> {
  if (local && local.dir !== source.dir) await closeLocalQueries();
  if (!local) {
    const open = async () => {
      const { SandboxedReader } = await import('../functions/warehouse/query-sandbox.js');
      await mkdir(source.dir, { recursive: true });
      return new SandboxedReader(source.bucket, source.dir, { onDownload: downloadBar() });
    };
    local = { dir: source.dir, reader: open() };
  }
  return local.reader;
}

/**
 * Runs SQL on fresh read-only copies of the warehouse of `target` (default: the local stack, from the
 * configured S3 endpoint), in the query process (kept for the next query; it does not keep this
 * process running). With a target, `resolveTarget` must have set the environment first. At most
 * MAX_ROWS rows: `truncated` says there were more. `numbers`: see `numbersConverter` in query.ts.
 */
export async function queryLocal(
  sql: string,
  options: { target?: Target | undefined; numbers?: boolean } = {},
): Promise<QueryResult> {
  const source = await sourceOf(options.target);
  const { QueryError } = await import('../functions/warehouse/query.js');
  const reader = await readerFor(source);
  const result = await reader
    .query(sql, undefined, { numbers: options.numbers === true })
    .catch((err: Error) => {
      if (err instanceof QueryError) throw err;
      throw source.unreadable(err);
    });
  if (!result) throw noWarehouse(source.bucket);
  return result;
}

function noWarehouse(bucket: string): Error {
  return new Error(`no warehouse yet in s3://${bucket}: upload a file and wait for it to load`);
}

/** Stops the query process, if one was started. */
export async function closeLocalQueries(): Promise<void> {
  const open = local;
  local = undefined;
  if (open) await (await open.reader).close();
}

/** An export's file format and compression from its name: `.parquet`, `.csv[.gz|.zst]`, `.jsonl[.gz|.zst]`. */
export function exportFormatOf(
  path: string,
  format?: string,
): { format: ExportFormat; compression?: 'gzip' | 'zstd' } {
  const name = basename(path).toLowerCase();
  const compression = name.endsWith('.gz') ? 'gzip' : name.endsWith('.zst') ? 'zstd' : undefined;
  const stem = compression ? name.replace(/\.(gz|zst)$/, '') : name;
  const named = stem.endsWith('.parquet')
    ? 'parquet'
    : stem.endsWith('.csv')
      ? 'csv'
      : /\.(jsonl|ndjson)$/.test(stem)
        ? 'jsonl'
        : undefined;
  const chosen = format ?? named;
  if (chosen === undefined) {
    throw new Error(
      `cannot tell the format of ${path}: name it .parquet, .csv or .jsonl (.csv.gz, .jsonl.zst, …), or pass --format`,
    );
  }
  if (chosen !== 'parquet' && chosen !== 'csv' && chosen !== 'jsonl') {
    throw new Error(`--format is parquet, csv or jsonl, not ${chosen}`);
  }
  // Parquet compresses its pages itself; a .gz around it would not be a Parquet file.
  if (chosen === 'parquet' && compression) {
    throw new Error(`${path}: Parquet is compressed inside; name it .parquet`);
  }
  return { format: chosen, ...(compression && chosen !== 'parquet' ? { compression } : {}) };
}

export interface ExportOptions {
  output: string;
  format?: string;
  /** Seconds the export may run (the query process is killed past it). */
  timeoutSeconds: number;
  /** Replace an existing file. */
  force?: boolean;
  target?: Target;
  /** Show a progress bar (default: stderr is a TTY). */
  progress?: boolean;
}

export interface ExportSummary {
  path: string;
  format: ExportFormat;
  rows: number;
  bytes: number;
  seconds: number;
}

/** The line `export` prints when done. */
export function exportSummaryLine(s: ExportSummary): string {
  return `exported ${s.rows.toLocaleString('en-US')} rows (${formatBytes(s.bytes)} ${s.format}) to ${escapeControls(s.path)} in ${s.seconds.toFixed(1)} s\n`;
}

/**
 * `telemetry-pipeline export`: every row of SQL that reads, written by the query process's DuckDB
 * (COPY … TO, streamed: never the whole result in memory) to a hidden file beside `output` — the one
 * file that process may write — and renamed to `output` once complete: a failed, stopped or timed-out
 * export leaves no file, and never half of an existing one. The query limits hold as for `query`
 * (address space, the SELECT-only check, no other file or network access), with a time limit of its
 * own. Progress (rows read, bytes written, time) on stderr when it is a terminal.
 */
export async function runExport(sql: string, opts: ExportOptions): Promise<ExportSummary> {
  const path = resolve(opts.output);
  const { format, compression } = exportFormatOf(path, opts.format);
  const { exportPathProblem, QueryError } = await import('../functions/warehouse/query.js');
  const problem = exportPathProblem(path);
  if (problem) throw new Error(`${escapeControls(path)}: ${problem}`);
  const dir = dirname(path);
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new Error(`no folder ${dir} to write ${basename(path)} in`);
  if (existsSync(path) && !opts.force) throw new Error(`${path} exists: pass --force to replace it`);
  const partial = join(dir, `.${basename(path)}.${randomBytes(4).toString('hex')}.partial`);
  const target: ExportTarget = { path: partial, format, ...(compression ? { compression } : {}) };

  const source = await sourceOf(opts.target);
  const started = Date.now();
  const bar = (opts.progress ?? Boolean(process.stderr.isTTY)) ? progressBar() : undefined;
  const sizer = setInterval(() => {
    stat(partial).then(
      (s) => bar?.bytes(s.size),
      () => undefined,
    );
  }, 500);
  // Ctrl+C: the query process dies with its channel; the partial file goes too.
  const interrupted = () => {
    clearInterval(sizer);
    bar?.stop();
    void rm(partial, { force: true }).finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  try {
    const reader = await readerFor(source);
    const rows = await reader
      .export(sql, target, { timeoutSeconds: opts.timeoutSeconds, onProgress: (p) => bar?.rows(p) })
      .catch((err: Error) => {
        if (err instanceof QueryError) throw err;
        throw source.unreadable(err);
      });
    if (rows === undefined) throw noWarehouse(source.bucket);
    await rename(partial, path);
    const { size } = await stat(path);
    return { path, format, rows, bytes: size, seconds: (Date.now() - started) / 1000 };
  } catch (err) {
    await rm(partial, { force: true });
    let message = (err as Error).message;
    if (err instanceof QueryError && /Out of Memory Error/.test(message)) {
      message += `\n(an export runs within DuckDB's memory limit, DUCKDB_MEMORY_LIMIT (default 1GB), and spills nothing to disk: a large ORDER BY or aggregate needs more; export without it, in parts, or with a higher DUCKDB_MEMORY_LIMIT)`;
    }
    throw new Error(escapeControls(message, { lines: true }), { cause: err });
  } finally {
    process.removeListener('SIGINT', interrupted);
    clearInterval(sizer);
    bar?.stop();
    await closeLocalQueries();
  }
}

/**
 * The warehouse files being brought up to date before a query (a base can be large, the first time or
 * after a compaction): a bar on stderr when it is a terminal, nothing otherwise.
 */
function downloadBar(): DownloadObserver {
  const progress = byteProgress({ write: (line) => process.stderr.write(`${line}\n`) });
  return ({ key, bytes, total }) => {
    const label = `warehouse ${key}`;
    if (bytes === 0) progress.start(total ?? 0, label);
    else progress.update(bytes, total === undefined ? {} : { total });
    if (total !== undefined && bytes >= total) progress.stop();
  };
}

/** One line on stderr: DuckDB's progress, rows read, bytes written, time. */
function progressBar() {
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: 'exporting {bar} {percentage}% | {read} rows read | {written} written | {duration_formatted}',
      barsize: 24,
      hideCursor: true,
      clearOnComplete: true,
      fps: 4,
    },
    cliProgress.Presets.shades_classic,
  );
  const payload = { read: '0', written: '0 B' };
  bar.start(100, 0, payload);
  let percentage = 0;
  return {
    rows(p: { percentage: number; rowsRead: number; rowsTotal: number }) {
      percentage = Math.min(100, Math.floor(p.percentage));
      payload.read = `${p.rowsRead.toLocaleString('en-US')} of ${p.rowsTotal.toLocaleString('en-US')}`;
      bar.update(percentage, payload);
    },
    bytes(n: number) {
      payload.written = formatBytes(n);
      bar.update(percentage, payload);
    },
    stop() {
      bar.stop();
    },
  };
}
