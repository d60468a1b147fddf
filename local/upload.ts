import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, join, relative, resolve, sep } from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Manifest } from '../functions/contracts/manifest.js';
import { byteProgress } from './byte-progress.js';
import { formatBytes, formatDuration } from './cli-format.js';
import type { Target } from './target.js';

/**
 * `telemetry-pipeline upload <file|dir…> --factory <id>`: puts files into the raw bucket under
 * `<factory>/<yyyy>/<mm>/<dd>/<name>` (a folder's files keep their path below it), in parts
 * (lib-storage), with a progress bar on a terminal; with `--wait`, follows each to the warehouse.
 */
export interface UploadOptions {
  factory: string;
  /** `yyyy-mm-dd` (default: today, UTC). */
  date?: string;
  /** Upload for a factory that is not in the config. */
  newFactory?: boolean;
  wait?: boolean;
  /** Seconds `--wait` waits for all files together (default 300). */
  timeoutSeconds?: number;
  write: (line: string) => void;
  /** A progress bar (default: stderr is a TTY). */
  bar?: boolean;
  now?: () => Date;
}

export interface UploadedFile {
  path: string;
  key: string;
  eTag: string;
  bytes: number;
}

export interface WaitResult {
  key: string;
  outcome: 'loaded' | 'quarantined' | 'timeout';
  manifest?: Manifest;
  /** From the warehouse's `pipeline_files`. */
  rowsLoaded?: number;
  rowsExpected?: number;
  seconds: number;
}

export interface UploadResult {
  files: UploadedFile[];
  waited?: WaitResult[];
  /** 0 when every file was uploaded (and, with `--wait`, loaded completely). */
  exitCode: number;
}

/** The raw key prefix of a factory and day: `<factory>/<yyyy>/<mm>/<dd>/`. */
export function rawPrefix(factory: string, date: string): string {
  return `${factory}/${date.replaceAll('-', '/')}/`;
}

function checkDate(date: string): string {
  const t = new Date(`${date}T00:00:00Z`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date) || Number.isNaN(t.getTime()) || !t.toISOString().startsWith(date))
    throw new Error(`--date ${date}: not a calendar date (yyyy-mm-dd)`);
  return date;
}

/** The files to upload with their names below the day: a file by its name, a folder's files by their path in it. */
async function collectFiles(paths: string[]): Promise<{ path: string; name: string; bytes: number }[]> {
  const out: { path: string; name: string; bytes: number }[] = [];
  const walk = async (dir: string, root: string) => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue; // .DS_Store, editor swap files, …
      const full = join(dir, e.name);
      if (e.isDirectory()) await walk(full, root);
      else if (e.isFile())
        out.push({
          path: full,
          name: relative(root, full).split(sep).join('/'),
          bytes: (await stat(full)).size,
        });
    }
  };
  for (const p of paths) {
    const full = resolve(p);
    const st = await stat(full).catch(() => undefined);
    if (!st) throw new Error(`${p}: no such file or folder`);
    if (st.isDirectory()) await walk(full, full);
    else if (st.isFile()) out.push({ path: full, name: basename(full), bytes: st.size });
    else throw new Error(`${p}: not a file or a folder`);
  }
  return out;
}

export async function runUpload(paths: string[], target: Target, opts: UploadOptions): Promise<UploadResult> {
  const { write } = opts;
  const { runtimeConfig } = await import('../functions/core/config.js');
  const { loadFactories } = await import('../functions/contracts/factories.js');
  const { FACTORY_ID } = await import('../functions/contracts/keys.js');

  const factory = opts.factory;
  if (!FACTORY_ID.test(factory)) {
    throw new Error(
      `--factory ${factory}: not a factory id (a-z, 0-9 and -, starting with a letter or digit); the ETL would quarantine its files`,
    );
  }
  const config = loadFactories(runtimeConfig.configPath);
  if (!config.factories.has(factory) && !opts.newFactory) {
    throw new Error(
      `no factory "${factory}" in ${runtimeConfig.configPath}; known: ${[...config.factories.keys()].join(', ') || 'none'}. ` +
        'A factory not in the config is still processed — formats detected from the first lines, naive times read as UTC: pass --new-factory to upload anyway',
    );
  }
  const date = checkDate(opts.date ?? (opts.now?.() ?? new Date()).toISOString().slice(0, 10));
  const prefix = rawPrefix(factory, date);
  const files = await collectFiles(paths);
  if (files.length === 0) throw new Error(`nothing to upload in ${paths.join(', ')}`);
  const seen = new Map<string, string>();
  for (const f of files) {
    const key = `${prefix}${f.name}`;
    if (Buffer.byteLength(key) > 1024) throw new Error(`${f.path}: key ${key} is over S3's 1,024 bytes`);
    const other = seen.get(key);
    if (other) throw new Error(`${other} and ${f.path} would both be s3://${target.buckets.raw}/${key}`);
    seen.set(key, f.path);
  }

  const total = files.reduce((n, f) => n + f.bytes, 0);
  const progress = byteProgress({ write, bar: opts.bar });
  const started = Date.now();
  const uploaded: UploadedFile[] = [];
  let before = 0;
  try {
    progress.start(total, files[0]!.name);
    for (const [i, f] of files.entries()) {
      const key = `${prefix}${f.name}`;
      const label = files.length === 1 ? f.name : `${i + 1}/${files.length} ${f.name}`;
      progress.update(before, { label });
      const upload = new Upload({
        client: target.s3,
        params: { Bucket: target.buckets.raw, Key: key, Body: createReadStream(f.path) },
        // 8 MiB parts, 4 at a time: at most 32 MiB buffered.
        partSize: 8 * 1024 * 1024,
        queueSize: 4,
      });
      upload.on('httpUploadProgress', (p) => {
        progress.update(before + Math.min(p.loaded ?? 0, f.bytes));
      });
      const res = await upload.done();
      let eTag = (res as { ETag?: string }).ETag?.replace(/"/g, '');
      if (!eTag) {
        const head = await target.s3.send(new HeadObjectCommand({ Bucket: target.buckets.raw, Key: key }));
        eTag = head.ETag?.replace(/"/g, '') ?? '';
      }
      before += f.bytes;
      progress.update(before);
      uploaded.push({ path: f.path, key, eTag, bytes: f.bytes });
      progress.log(`↑ s3://${target.buckets.raw}/${key}  ${formatBytes(f.bytes)}`);
    }
  } finally {
    progress.stop();
  }
  const seconds = (Date.now() - started) / 1000;
  write(
    `uploaded ${uploaded.length} file(s), ${formatBytes(total)} in ${formatDuration(seconds)} (${formatBytes(total / Math.max(seconds, 0.001))}/s) to s3://${target.buckets.raw}/${prefix} on ${target.label}`,
  );
  if (!opts.wait) return { files: uploaded, exitCode: 0 };

  const waited = await waitForFiles(uploaded, target, opts.timeoutSeconds ?? 300, write);
  const bad = waited.filter((w) => w.outcome !== 'loaded');
  write(
    `waited: ${waited.length - bad.length} loaded, ${bad.filter((w) => w.outcome === 'quarantined').length} quarantined, ${bad.filter((w) => w.outcome === 'timeout').length} not complete`,
  );
  return { files: uploaded, waited, exitCode: bad.length > 0 ? 1 : 0 };
}

/** `'it''s'`: a SQL string literal. */
const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;

/**
 * Follows each uploaded version to the warehouse: its manifest in the lake (loaded or quarantined),
 * then `pipeline_files.complete` — every row the ETL wrote is in the warehouse. Prints a line per file
 * as it ends.
 */
async function waitForFiles(
  files: UploadedFile[],
  target: Target,
  timeoutSeconds: number,
  write: (line: string) => void,
): Promise<WaitResult[]> {
  const { manifestKeyOf } = await import('../functions/contracts/keys.js');
  const { manifestSchema } = await import('../functions/contracts/manifest.js');
  const { queryLocal, closeLocalQueries } = await import('./query.js');
  const started = Date.now();
  const deadline = started + timeoutSeconds * 1000;
  const results = new Map<string, WaitResult>();
  const manifests = new Map<string, Manifest>();
  let lastWarehouse = new Map<string, { complete: boolean; rowsLoaded: number; rowsExpected: number }>();

  const readManifest = async (f: UploadedFile) => {
    const { getJson } = await import('../functions/core/s3.js');
    // Not written yet, or an earlier version's: not this upload's manifest.
    const m = manifestSchema.safeParse(
      await getJson(target.buckets.lake, manifestKeyOf(target.buckets.raw, f.key)),
    );
    return m.success && m.data.source.eTag === f.eTag ? m.data : undefined;
  };
  const line = (f: UploadedFile, r: WaitResult) => {
    const m = r.manifest;
    const lines = m
      ? `${m.lines.total} line${m.lines.total === 1 ? '' : 's'}: ${m.lines.loaded} loaded, ${m.lines.rejected} rejected`
      : '';
    const after = `after ${formatDuration(r.seconds)}`;
    if (r.outcome === 'quarantined')
      return `✗ ${f.key}  quarantined: ${m?.quarantine?.reason ?? m?.quarantine?.code ?? 'see its manifest'} (${after})`;
    if (r.outcome === 'loaded')
      return `✓ ${f.key}  loaded — ${lines}; ${r.rowsLoaded} rows in the warehouse (${m!.rows.readings} readings, ${m!.rows.events} events) ${after}${m?.warnings?.length ? `; warning: ${m.warnings.join('; ')}` : ''}`;
    const where = m
      ? `processed (${lines}), ${r.rowsLoaded ?? 0} of ${r.rowsExpected ?? m.rows.readings + m.rows.events} rows in the warehouse`
      : 'no manifest yet (not processed by the ETL)';
    return `✗ ${f.key}  not complete after ${formatDuration(timeoutSeconds)}: ${where}`;
  };

  try {
    while (results.size < files.length) {
      const open = files.filter((f) => !results.has(f.key));
      for (const f of open) {
        if (!manifests.has(f.key)) {
          const m = await readManifest(f);
          if (m) manifests.set(f.key, m);
        }
        const m = manifests.get(f.key);
        if (m?.status === 'quarantined') {
          const r: WaitResult = {
            key: f.key,
            outcome: 'quarantined',
            manifest: m,
            seconds: (Date.now() - started) / 1000,
          };
          results.set(f.key, r);
          write(line(f, r));
        }
      }
      const loaded = open.filter((f) => manifests.get(f.key)?.status === 'loaded' && !results.has(f.key));
      if (loaded.length > 0) {
        lastWarehouse = await warehouseRows(loaded, queryLocal).catch(() => lastWarehouse);
        for (const f of loaded) {
          const w = lastWarehouse.get(`${f.key}\u0000${f.eTag}`);
          if (w?.complete) {
            const r: WaitResult = {
              key: f.key,
              outcome: 'loaded',
              manifest: manifests.get(f.key),
              rowsLoaded: w.rowsLoaded,
              rowsExpected: w.rowsExpected,
              seconds: (Date.now() - started) / 1000,
            };
            results.set(f.key, r);
            write(line(f, r));
          }
        }
      }
      if (results.size === files.length) break;
      if (Date.now() >= deadline) {
        for (const f of files.filter((x) => !results.has(x.key))) {
          const w = lastWarehouse.get(`${f.key}\u0000${f.eTag}`);
          const r: WaitResult = {
            key: f.key,
            outcome: 'timeout',
            manifest: manifests.get(f.key),
            rowsLoaded: w?.rowsLoaded,
            rowsExpected: w?.rowsExpected,
            seconds: (Date.now() - started) / 1000,
          };
          results.set(f.key, r);
          write(line(f, r));
        }
        break;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    await closeLocalQueries();
  }
  return files.map((f) => results.get(f.key)!);
}

/** The warehouse's accounting of these versions (`pipeline_files`), a thousand keys per query. */
async function warehouseRows(
  files: UploadedFile[],
  query: (sql: string) => Promise<{ rows: Record<string, unknown>[] }>,
): Promise<Map<string, { complete: boolean; rowsLoaded: number; rowsExpected: number }>> {
  const out = new Map<string, { complete: boolean; rowsLoaded: number; rowsExpected: number }>();
  for (let i = 0; i < files.length; i += 1000) {
    const chunk = files.slice(i, i + 1000);
    const { rows } = await query(
      `SELECT source_key, source_etag, complete, rows_loaded, rows_expected FROM pipeline_files
       WHERE source_key IN (${chunk.map((f) => sqlString(f.key)).join(', ')})`,
    );
    for (const r of rows) {
      out.set(`${String(r.source_key)}\u0000${String(r.source_etag)}`, {
        complete: r.complete === true || r.complete === 'true',
        rowsLoaded: Number(r.rows_loaded ?? 0),
        rowsExpected: Number(r.rows_expected ?? 0),
      });
    }
  }
  return out;
}
