import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { runtimeConfig } from '../core/config.js';
import { logger } from '../core/logger.js';
import {
  EXPORT_FORMATS,
  type ExportProgress,
  type ExportTarget,
  MAX_EXPORT_TIMEOUT_SECONDS,
  QUERY_TIMEOUT_SECONDS,
  QueryError,
  type QueryParams,
  type QueryResult,
  type ReaderOptions,
  WarehouseReader,
} from './query.js';
import type { DownloadObserver } from './warehouse-file.js';

/**
 * Callers' SQL in a process of its own. DuckDB bounds what it manages — its buffers, the interrupt
 * checked between chunks — but not everything a function may do: `length(repeat('x', 2000000000))`
 * allocates 2 GB outside the buffer manager inside one call, where no interrupt is seen (31 s and 4 GB
 * in process). The query child runs with an address-space limit, so such an allocation fails at once
 * with DuckDB's own "Out of Memory Error", and a query that does not stop when interrupted is ended by
 * killing the child. The parent keeps one child, spawned at the first query and reused: it holds the
 * warehouse copies open (a WarehouseReader of its own), so its caches stay warm between queries.
 *
 * The child's entry is this module's own file, `fileURLToPath(import.meta.url)`: locally that is
 * query-sandbox.ts (run through tsx like its parent), deployed it is the api function's esbuild bundle,
 * which contains this module. Either way the file is loaded as a program with `TELEMETRY_QUERY_CHILD`
 * set, and the hook at the end of this module sees it and serves queries instead of waiting for a
 * handler call; without the variable (every other load) the hook does nothing.
 */

/** Set in the child's environment only: the child's settings, as JSON (`childSettings`). */
const CHILD_ENV = 'TELEMETRY_QUERY_CHILD';

/**
 * Seconds after its timeout before a query's child is killed: the child interrupts the query at the
 * timeout, and DuckDB stops within milliseconds when it checks; past this it is not going to.
 */
const KILL_GRACE_SECONDS = 2;

/**
 * The child's address space beyond the memory budget (DuckDB's memory_limit), in bytes: a base, and
 * more per core past two (DuckDB runs a thread per core). Most of a Node process's address space is
 * reserved, not used. Measured (Node 22, 2 cores, glibc arenas capped as below): the child idles at a
 * VmSize of 1.03 GB as the api's bundle and 1.16 GB through tsx, with the warehouse open; a query that
 * fills a 1 GB budget adds ≈ 1.4 GB (the budget, and hash tables and allocator slack outside it). With
 * 1.5 GiB that query ends with DuckDB's own memory-limit error, a 0.6 GB sort passes, and a 2 GB
 * allocation fails at once; at 16 DuckDB threads the sort failed through tsx until 64 MiB per thread
 * was added (thread stacks and per-thread sort state), then passed at 8 and 16 threads.
 */
const ADDRESS_SPACE_BASE = 1.5 * 1024 ** 3;
const ADDRESS_SPACE_PER_CORE = 64 * 1024 ** 2;

/** The shell that sets the limit (`ulimit -v`, in KiB) and replaces itself with Node. */
const SHELL = '/bin/sh';

const childSettings = z.object({
  bucket: z.string().min(1),
  dir: z.string().min(1),
  timeoutSeconds: z.number().positive(),
});
type ChildSettings = z.infer<typeof childSettings>;

const queryValue = z.union([z.string(), z.number(), z.boolean(), z.null()]);

/** A statement's own time limit (else the child's `timeoutSeconds`): an export's is longer. */
const timeoutSeconds = z.number().positive().max(MAX_EXPORT_TIMEOUT_SECONDS).optional();

/** Parent → child: a query (at most MAX_ROWS rows back), or an export (every row, to a file). */
const parentMessage = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('query'),
    id: z.number().int(),
    sql: z.string(),
    params: z.record(z.string(), queryValue).optional(),
    timeoutSeconds,
    numbers: z.boolean().optional(),
  }),
  z.object({
    type: z.literal('export'),
    id: z.number().int(),
    sql: z.string(),
    target: z.object({
      path: z.string().min(1),
      format: z.enum(EXPORT_FORMATS),
      compression: z.enum(['gzip', 'zstd']).optional(),
    }),
    timeoutSeconds,
  }),
]);
type ParentMessage = z.infer<typeof parentMessage>;
/** A request as the parent keeps it: a message less its id (given at each send). */
type Request = WithoutId<ParentMessage>;
type WithoutId<M> = M extends unknown ? Omit<M, 'id'> : never;

/** Child → parent. */
const childMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready') }),
  /** The copies are open and the statement starts: the kill timer runs from here. */
  z.object({ type: z.literal('started'), id: z.number().int() }),
  z.object({
    type: z.literal('result'),
    id: z.number().int(),
    result: z
      .object({
        columns: z.array(z.string()),
        rows: z.array(z.record(z.string(), z.unknown())),
        truncated: z.boolean().optional(),
      })
      .nullable(),
  }),
  /** A warehouse file being downloaded (the copies are refreshed before a query), a few times a second. */
  z.object({
    type: z.literal('download'),
    key: z.string(),
    bytes: z.number(),
    total: z.number().nullable(),
  }),
  /** An export's progress, about twice a second. */
  z.object({
    type: z.literal('progress'),
    id: z.number().int(),
    percentage: z.number(),
    rowsRead: z.number(),
    rowsTotal: z.number(),
  }),
  /** An export ended: the rows written (null: no warehouse yet). */
  z.object({ type: z.literal('exported'), id: z.number().int(), rows: z.number().nullable() }),
  z.object({
    type: z.literal('error'),
    id: z.number().int(),
    message: z.string(),
    /** The query's own error (DuckDB refused or stopped it), as opposed to reading the warehouse. */
    query: z.boolean(),
  }),
]);
type ChildMessage = z.infer<typeof childMessage>;

/** DuckDB's size notation (`1GB` = 10⁹ bytes, `1GiB` = 2³⁰) in bytes. */
function sizeBytes(size: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT])(i?)B$/i.exec(size.trim());
  if (!m) throw new Error(`not a size: ${size}`);
  const power = 'KMGT'.indexOf(m[2]!.toUpperCase()) + 1;
  return Math.round(Number(m[1]) * (m[3] ? 1024 : 1000) ** power);
}

/** The child's address-space limit: the headroom plus DuckDB's memory limit. */
function addressSpaceKiB(): number {
  const headroom = ADDRESS_SPACE_BASE + ADDRESS_SPACE_PER_CORE * Math.max(0, availableParallelism() - 2);
  return Math.ceil((headroom + sizeBytes(runtimeConfig.duckdbMemoryLimit ?? '1GB')) / 1024);
}

/**
 * Node's options for the child: the parent's (as `fork` would pass them) less the inspector's, whose
 * port the parent holds, and WebAssembly made to fit the limit. V8 reserves 10 GB of address space per
 * Wasm memory for its bounds-check trap (under the limit tsx's lexer failed to load), and without the
 * trap still 4 GB per memory that may grow: the two memories of tsx's lexers left too little for DuckDB
 * to open a file. 2048 pages (128 MiB) is plenty for them, and nothing else in the child uses Wasm.
 * A TypeScript entry (locally) needs tsx: the CLI registers it in process, so its options do not
 * always say so; it is loaded by path, whatever the working folder.
 */
function nodeOptions(entry: string): string[] {
  const inherited = process.execArgv.filter((a) => !a.startsWith('--inspect'));
  const options = [...inherited, '--disable-wasm-trap-handler', '--wasm-max-mem-pages=2048'];
  if (!entry.endsWith('.ts') || inherited.some((a) => a.includes('tsx'))) return options;
  return [...options, '--import', pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href];
}

let warnedNoShell = false;

/**
 * Starts a child: `/bin/sh` sets the address-space limit and execs Node on this module, so the pid is
 * Node's. Without a shell there is no limit (warned once); timeouts still hold by SIGKILL. glibc's
 * malloc arenas are capped at two: it reserves 64 MiB of address space for each, up to 8 per core, and
 * those reservations (0.56 GB of the 1.12 GB reserved on 2 cores, more on more) left a 0.6 GB sort
 * without room at 8 DuckDB threads (DuckDB's own blocks come from its jemalloc; timings were the same).
 * The child's stdout goes to the parent's stderr: the CLI's stdout carries the rows.
 */
function spawnChild(settings: ChildSettings): ChildProcess {
  const entry = fileURLToPath(import.meta.url);
  const node = [process.execPath, ...nodeOptions(entry), entry];
  const options: SpawnOptions = {
    stdio: ['ignore', 2, 'inherit', 'ipc'],
    env: { ...process.env, [CHILD_ENV]: JSON.stringify(settings), MALLOC_ARENA_MAX: '2' },
  };
  if (existsSync(SHELL)) {
    // $1 is the limit; what follows it, the command. A refused limit is said, not fatal.
    const script = 'ulimit -v "$1" || echo "query sandbox: no address-space limit" >&2; shift; exec "$@"';
    return spawn(SHELL, ['-c', script, 'query-sandbox', String(addressSpaceKiB()), ...node], options);
  }
  if (!warnedNoShell) {
    warnedNoShell = true;
    logger.warn({ shell: SHELL }, 'no shell to limit the query process: queries run without a memory limit');
  }
  return spawn(node[0]!, node.slice(1), options);
}

/** A query (or export) on its way through a child. */
interface Pending {
  id: number;
  request: Request;
  /** Seconds it may run before the child is interrupted (and then killed). */
  timeoutSeconds: number;
  /** Children it was sent to: an innocent query is sent again once when its child is killed. */
  sends: number;
  timer?: NodeJS.Timeout;
  onProgress?: (progress: ExportProgress) => void;
  // biome-ignore lint/suspicious/noExplicitAny: what a result is depends on the request
  resolve: (result: any) => void;
  reject: (err: Error) => void;
}

/** Options of one query through the sandbox. */
export interface SandboxQueryOptions {
  /** Seconds it may run (default: the reader's). */
  timeoutSeconds?: number;
  /** Numbers as JSON numbers where exact (see `numbersConverter` in query.ts), not strings. */
  numbers?: boolean;
}

/** Options of one export through the sandbox. */
export interface SandboxExportOptions {
  /** Seconds it may run (default: the reader's); at most MAX_EXPORT_TIMEOUT_SECONDS. */
  timeoutSeconds?: number;
  onProgress?: (progress: ExportProgress) => void;
}

/** One child process and the queries it has. */
interface Child {
  process: ChildProcess;
  ready: boolean;
  inFlight: Map<number, Pending>;
  /** Queries it was killed for (they ran over their time). */
  culprits: Set<Pending>;
  /** Stopped by `close()`. */
  closing: boolean;
  gone: boolean;
}

/**
 * The query API's and CLI's reader: `query` as WarehouseReader's, run in a child process whose limits
 * hold whatever a query calls (see the module's comment). A query that runs over its time is stopped
 * (`stopped after N s`) by killing the child if the interrupt did not stop it; the other queries that
 * were in that child are sent once to a new one. A child that dies otherwise fails the queries it had
 * (`the query process died …`); the next query starts a new one. The child dies with the parent, and
 * `close()` stops it. While no query runs the child does not keep the parent's event loop alive.
 */
export class SandboxedReader {
  private readonly settings: ChildSettings;
  private child?: Child;
  private nextId = 1;

  /** Told how a download of the warehouse files goes, in the child (see ReaderOptions.onDownload). */
  private readonly onDownload?: DownloadObserver;

  constructor(bucket: string, dir: string, options: ReaderOptions = {}) {
    this.settings = { bucket, dir, timeoutSeconds: options.timeoutSeconds ?? QUERY_TIMEOUT_SECONDS };
    this.onDownload = options.onDownload;
  }

  /** The current child's pid (none before the first query or after it died). */
  get pid(): number | undefined {
    return this.child?.process.pid;
  }

  async query(
    sql: string,
    params?: QueryParams,
    options: SandboxQueryOptions = {},
  ): Promise<QueryResult | undefined> {
    const request: Request = {
      type: 'query',
      sql,
      ...(params ? { params } : {}),
      ...(options.timeoutSeconds ? { timeoutSeconds: options.timeoutSeconds } : {}),
      ...(options.numbers ? { numbers: true } : {}),
    };
    return new Promise((resolve, reject) => {
      this.dispatch({ id: this.nextId++, ...this.timed(request), sends: 0, resolve, reject });
    });
  }

  /**
   * Writes every row of SQL that reads to `target.path` in the query process, with its limits (the
   * address space, the kill at the timeout, the statement check); the process's DuckDB may write that
   * one file and nothing else (see WarehouseReader.export). The rows written, or `undefined` before
   * the first batch has been loaded. A file left by an export that failed is the caller's to remove.
   */
  async export(
    sql: string,
    target: ExportTarget,
    options: SandboxExportOptions = {},
  ): Promise<number | undefined> {
    const request: Request = {
      type: 'export',
      sql,
      target,
      ...(options.timeoutSeconds ? { timeoutSeconds: options.timeoutSeconds } : {}),
    };
    return new Promise((resolve, reject) => {
      const timed = this.timed(request);
      this.dispatch({
        id: this.nextId++,
        ...timed,
        sends: 0,
        onProgress: options.onProgress,
        resolve,
        reject,
      });
    });
  }

  /** A request with its time limit checked (as the child checks it). */
  private timed(request: Request): { request: Request; timeoutSeconds: number } {
    const seconds = request.timeoutSeconds ?? this.settings.timeoutSeconds;
    if (!(seconds > 0 && seconds <= MAX_EXPORT_TIMEOUT_SECONDS)) {
      throw new QueryError(`a time limit is between 0 and ${MAX_EXPORT_TIMEOUT_SECONDS} s, not ${seconds}`);
    }
    return { request, timeoutSeconds: seconds };
  }

  /** Stops the child (queries still running in it fail). */
  async close(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.gone) return;
    child.closing = true;
    const exited = new Promise<void>((resolve) => child.process.once('exit', () => resolve()));
    // The child exits when its channel closes; one that is stuck in DuckDB is killed.
    if (child.process.connected) child.process.disconnect();
    const kill = setTimeout(() => child.process.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(kill);
  }

  private dispatch(p: Pending): void {
    p.sends++;
    const child = this.child ?? this.start();
    child.inFlight.set(p.id, p);
    this.holdParent(child);
    if (child.ready) send(child, p);
  }

  private start(): Child {
    const child: Child = {
      process: spawnChild(this.settings),
      ready: false,
      inFlight: new Map(),
      culprits: new Set(),
      closing: false,
      gone: false,
    };
    this.child = child;
    child.process.on('message', (raw) => this.received(child, raw));
    child.process.once('exit', (code, signal) =>
      this.gone(child, signal ? `signal ${signal}` : `exit code ${code}`),
    );
    child.process.on('error', (err) => {
      // Not spawned (no pid), or a message that could not be sent: either way the child is done.
      if (child.process.pid === undefined) this.gone(child, err.message);
      else child.process.kill('SIGKILL');
    });
    return child;
  }

  private received(child: Child, raw: unknown): void {
    const parsed = childMessage.safeParse(raw);
    if (!parsed.success || child.gone) return;
    const msg: ChildMessage = parsed.data;
    if (msg.type === 'ready') {
      child.ready = true;
      for (const p of child.inFlight.values()) send(child, p);
      return;
    }
    if (msg.type === 'download') {
      this.onDownload?.({ key: msg.key, bytes: msg.bytes, total: msg.total ?? undefined });
      return;
    }
    const p = child.inFlight.get(msg.id);
    if (!p) return;
    if (msg.type === 'started') {
      const seconds = p.timeoutSeconds + KILL_GRACE_SECONDS;
      p.timer = setTimeout(() => this.kill(child, p), seconds * 1000);
      return;
    }
    if (msg.type === 'progress') {
      p.onProgress?.({ percentage: msg.percentage, rowsRead: msg.rowsRead, rowsTotal: msg.rowsTotal });
      return;
    }
    this.settle(child, p);
    if (msg.type === 'result') p.resolve(msg.result ?? undefined);
    else if (msg.type === 'exported') p.resolve(msg.rows ?? undefined);
    else if (msg.query) p.reject(new QueryError(msg.message));
    else p.reject(new Error(msg.message));
  }

  /** `p` ran over its time in `child` and the interrupt did not stop it. */
  private kill(child: Child, p: Pending): void {
    logger.warn(
      { pid: child.process.pid, timeoutSeconds: p.timeoutSeconds, sql: p.request.sql.slice(0, 500) },
      'a query did not stop when interrupted: killing its process',
    );
    child.culprits.add(p);
    if (this.child === child) this.child = undefined;
    child.process.kill('SIGKILL');
  }

  /** The child exited (or never started): every query it had is answered or sent on. */
  private gone(child: Child, how: string): void {
    if (child.gone) return;
    child.gone = true;
    if (this.child === child) this.child = undefined;
    const pending = [...child.inFlight.values()];
    child.inFlight.clear();
    if (pending.length > 0 && !child.closing && child.culprits.size === 0) {
      logger.warn({ pid: child.process.pid, how, queries: pending.length }, 'the query process died');
    }
    for (const p of pending) {
      clearTimeout(p.timer);
      p.timer = undefined;
      if (child.culprits.has(p)) {
        p.reject(new QueryError(`stopped after ${p.timeoutSeconds} s`));
      } else if (child.closing) {
        p.reject(new Error('the query reader was closed'));
      } else if (child.culprits.size > 0 && p.sends < 2) {
        this.dispatch(p);
      } else {
        p.reject(new QueryError(`the query process died (${how})`));
      }
    }
  }

  private settle(child: Child, p: Pending): void {
    clearTimeout(p.timer);
    child.inFlight.delete(p.id);
    this.holdParent(child);
  }

  /** An idle child (and its channel) does not keep the parent running; one with queries does. */
  private holdParent(child: Child): void {
    if (child.inFlight.size > 0) {
      child.process.ref();
      child.process.channel?.ref();
    } else {
      child.process.unref();
      child.process.channel?.unref();
    }
  }
}

function send(child: Child, p: Pending): void {
  const msg = { ...p.request, id: p.id } as ParentMessage;
  // A message that cannot be sent means the channel is gone: the exit handler answers the query.
  child.process.send(msg, (err) => {
    if (err) child.process.kill('SIGKILL');
  });
}

/**
 * The child: answers queries from the parent with its own WarehouseReader (it downloads and refreshes
 * the copies itself, with the environment it inherited), side by side. It exits when the channel to
 * the parent closes — the parent closed it or died — without waiting for a query that may never end.
 */
function serveQueries(settings: ChildSettings): void {
  mkdirSync(settings.dir, { recursive: true });
  const reply = (msg: ChildMessage) => process.send?.(msg);
  // At most every 200 ms per file, and its start and end: what a progress bar needs, no flood.
  const sent = new Map<string, number>();
  const reader = new WarehouseReader(settings.bucket, settings.dir, {
    timeoutSeconds: settings.timeoutSeconds,
    onDownload: ({ key, bytes, total }) => {
      const now = Date.now();
      const done = total !== undefined && bytes >= total;
      if (bytes > 0 && !done && now - (sent.get(key) ?? 0) < 200) return;
      sent.set(key, now);
      reply({ type: 'download', key, bytes, total: total ?? null });
    },
  });
  process.on('message', (raw) => {
    const parsed = parentMessage.safeParse(raw);
    if (!parsed.success) return;
    const msg = parsed.data;
    const { id } = msg;
    const onStart = () => reply({ type: 'started', id });
    const done =
      msg.type === 'query'
        ? reader
            .query(msg.sql, msg.params, {
              onStart,
              ...(msg.timeoutSeconds ? { timeoutSeconds: msg.timeoutSeconds } : {}),
              ...(msg.numbers ? { numbers: true } : {}),
            })
            .then((result) => reply({ type: 'result', id, result: result ?? null }))
        : reader
            .export(msg.sql, msg.target, {
              onStart,
              onProgress: (progress) => reply({ type: 'progress', id, ...progress }),
              ...(msg.timeoutSeconds ? { timeoutSeconds: msg.timeoutSeconds } : {}),
            })
            .then((rows) => reply({ type: 'exported', id, rows: rows ?? null }));
    done.catch((err: Error) =>
      reply({ type: 'error', id, message: err.message, query: err instanceof QueryError }),
    );
  });
  process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));
  reply({ type: 'ready' });
}

// The child's entry hook (see the module's comment). The variable is removed at once, so nothing this
// process might start inherits it.
const settingsJson = process.env[CHILD_ENV];
if (settingsJson !== undefined) {
  delete process.env[CHILD_ENV];
  serveQueries(childSettings.parse(JSON.parse(settingsJson)));
}
