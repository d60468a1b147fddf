import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { SendMessageBatchCommand, type SendMessageBatchRequestEntry } from '@aws-sdk/client-sqs';
import cliProgress from 'cli-progress';
import picomatch from 'picomatch';
import {
  dateOfRawKey,
  enrichedKey,
  FACTORY_ID,
  MANIFESTS_PREFIX,
  manifestKeyOf,
  parseDataKey,
} from '../functions/contracts/keys.js';
import { type Manifest, manifestSchema, normalizedOutputs } from '../functions/contracts/manifest.js';
import { deduplicationId, WAREHOUSE_GROUP, type WarehouseMessage } from '../functions/contracts/messages.js';
import { fromMetadata } from '../functions/contracts/provenance.js';
import {
  newReprocess,
  REPROCESS_STEPS,
  type Reprocess,
  type ReprocessStep,
} from '../functions/contracts/reprocess.js';
import { forEachConcurrent } from '../functions/core/concurrency.js';
import { objectCreatedMessages } from '../functions/core/notify.js';
import { RETIRED } from '../functions/warehouse/schema.js';
import { formatDuration } from './cli-format.js';
import type { Target } from './target.js';

/**
 * `telemetry-pipeline reprocess`: sends the raw files of a factory through the pipeline again — from the
 * ETL after a parsing rule was fixed, from the enrichment after the device registry or error-code
 * catalogue changed, or into the warehouse again — or for the first time (backfill: files that were in
 * the bucket before the pipeline, or whose notification never came). One message per object, each
 * carrying the run's reprocess marker (functions/contracts/reprocess.ts), ten per SendMessageBatch.
 * With `wait`, follows the objects until the lake and the warehouse hold what this run made.
 *
 * Imports nothing that reads the functions' configuration at import: the target sets it up first.
 */
export interface ReprocessOptions {
  factory: string;
  /** First and last day (yyyy-mm-dd, inclusive) of the date in the key. */
  from?: string;
  to?: string;
  /** A glob on the key (`plant/2024/03/*\/press-*.csv`); without a `/`, on the file name (`*.csv`). */
  key?: string;
  /** Where to start: etl (default), enrich or warehouse. */
  step?: string;
  dryRun?: boolean;
  wait?: boolean;
  /** How long `wait` waits, in seconds (default 900). */
  timeout?: number | string;
  /** Seconds between checks while waiting (default 2). */
  pollSeconds?: number;
  /** Show progress bars (default: stderr is a TTY). */
  bars?: boolean;
}

/** A raw object chosen for the run. */
interface RawObject {
  key: string;
  eTag: string;
  size: number;
}

/** What one raw object is sent as, and what `wait` checks for it. */
interface Planned {
  raw: RawObject;
  /** The lake objects its messages name (normalized, enriched or manifest keys). */
  sent: string[];
  /** Its manifest's key in the lake. */
  manifestKey: string;
  /** The enriched objects its data ends in (enrich, warehouse: known when sending; etl: from the new manifest). */
  enriched?: string[];
}

interface Outgoing {
  queue: 'etl' | 'enrich' | 'warehouse';
  entry: Omit<SendMessageBatchRequestEntry, 'Id'>;
  /** For `--dry-run`: what the message names. */
  names: string;
}

/** How a file ended, from the warehouse's `pipeline_files`. */
export interface FileOutcome {
  key: string;
  status: string;
  complete: boolean;
  linesTotal: number;
  linesLoaded: number;
  linesRejected: number;
  rowsLoaded: number;
  quarantineReason?: string;
}

export interface ReprocessReport {
  run: Reprocess;
  step: ReprocessStep;
  /** Raw objects chosen by the filters. */
  objects: string[];
  /** Messages sent (or, for a dry run, that would be). */
  messages: number;
  queue: 'etl' | 'enrich' | 'warehouse';
  /** Objects that could not be sent from this step, and why. */
  skipped: { key: string; reason: string }[];
  dryRun: boolean;
  wait?: {
    done: string[];
    pending: { key: string; waitingFor: string }[];
    seconds: number;
    files: FileOutcome[];
  };
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

function checkDay(name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const t = new Date(`${value}T00:00:00Z`);
  if (!DAY.test(value) || Number.isNaN(t.getTime()) || !t.toISOString().startsWith(value)) {
    throw new Error(`--${name}: "${value}" is not a day; write it as yyyy-mm-dd (e.g. 2024-03-01)`);
  }
  return value;
}

function checkStep(step: string | undefined): ReprocessStep {
  const s = step ?? 'etl';
  if (!(REPROCESS_STEPS as readonly string[]).includes(s)) {
    throw new Error(`--step: "${s}" is not a step; use ${REPROCESS_STEPS.join(', ')}`);
  }
  return s as ReprocessStep;
}

function checkTimeout(value: number | string | undefined): number {
  const n = value === undefined ? 900 : Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--timeout: "${value}" is not a number of seconds`);
  return n;
}

/** The key filter: a glob with a `/` is matched against the whole key, one without against the file name. */
export function keyMatcher(glob: string | undefined): (key: string) => boolean {
  if (glob === undefined) return () => true;
  const match = picomatch(glob, { dot: true });
  return glob.includes('/') ? match : (key) => match(key.slice(key.lastIndexOf('/') + 1));
}

/** The raw bucket's top-level folders: factories that have files, configured or not. */
async function factoriesInBucket(s3: S3Client, bucket: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Delimiter: '/', ContinuationToken: token }),
    );
    for (const p of page.CommonPrefixes ?? []) if (p.Prefix) out.push(p.Prefix.replace(/\/$/, ''));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

/** Factories in factories.yaml (the config this command was given); none if it does not load. */
async function configuredFactories(): Promise<{ ids: string[]; file: string; problem?: string }> {
  const { runtimeConfig } = await import('../functions/core/config.js');
  const { factoriesFile, loadFactories } = await import('../functions/contracts/factories.js');
  let file = runtimeConfig.configPath;
  try {
    file = factoriesFile(runtimeConfig.configPath);
    return { ids: [...loadFactories(runtimeConfig.configPath).factories.keys()], file };
  } catch (err) {
    return { ids: [], file, problem: (err as Error).message };
  }
}

/** The object store as the functions reach it (`resolveTarget` has pointed their environment at the target). */
const store = () => import('../functions/core/s3.js');

/** A raw file's manifest with its object's ETag and size; `undefined` when there is none (or not this release's). */
async function getManifest(
  bucket: string,
  key: string,
): Promise<{ manifest: Manifest; eTag: string; size: number } | undefined> {
  const { isNotFound, openObject } = await store();
  try {
    const { body, info } = await openObject(bucket, key);
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    const parsed = manifestSchema.safeParse(JSON.parse(Buffer.concat(chunks).toString('utf8')));
    return parsed.success ? { manifest: parsed.data, eTag: info.eTag, size: info.size } : undefined;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

async function head(bucket: string, key: string) {
  return (await store()).headObject(bucket, key);
}

async function* listRaw(bucket: string, prefix: string) {
  yield* (await store()).listObjects(bucket, prefix);
}

/** The messages for one raw object, from `step` on; a reason instead when it cannot start there. */
async function plan(
  target: Target,
  run: Reprocess,
  step: ReprocessStep,
  raw: RawObject,
): Promise<{ planned: Planned; out: Outgoing[] } | { reason: string }> {
  const { buckets, region } = target;
  const manifestKey = manifestKeyOf(buckets.raw, raw.key);
  const notice = (bucket: 'raw' | 'lake', key: string, o: { eTag: string; size: number }) =>
    objectCreatedMessages({
      bucket,
      physicalBucket: buckets[bucket],
      key,
      size: o.size,
      eTag: o.eTag,
      eventName: 'ObjectCreated:Put',
      region,
      reprocess: run,
    }).map(
      ({ queue, body }): Outgoing => ({
        queue: queue as Outgoing['queue'],
        entry: { MessageBody: body },
        names: `s3://${buckets[bucket]}/${key}`,
      }),
    );
  if (step === 'etl') {
    return { planned: { raw, sent: [raw.key], manifestKey }, out: notice('raw', raw.key, raw) };
  }
  const current = await getManifest(buckets.lake, manifestKey);
  if (!current) return { reason: 'never processed (no manifest): start it with --step etl' };
  const { manifest } = current;
  if (manifest.source.eTag !== raw.eTag) {
    return {
      reason: 'its manifest is of an earlier version (the ETL has not run the current one): use --step etl',
    };
  }
  const normalized = normalizedOutputs(manifest);
  const enriched = normalized.map((k) => enrichedKey(k));
  if (step === 'enrich') {
    for (const key of normalized) {
      if (!(await head(buckets.lake, key)))
        return { reason: `${key} is missing from the lake: use --step etl` };
    }
    // Enrich works per file, from its manifest: the one event enriches every normalized object of the
    // file, and the warehouse then loads them and records the file in one commit.
    return {
      planned: { raw, sent: [manifestKey], manifestKey, enriched },
      out: notice('lake', manifestKey, current),
    };
  }
  // warehouse: the enriched objects and the manifest, as enrich announces them, marked to load again.
  const messages: Exclude<WarehouseMessage, { kind: 'files' }>[] = [
    { kind: 'manifest', bucket: buckets.lake, key: manifestKey, eTag: current.eTag, reprocess: run },
  ];
  for (const key of enriched) {
    const o = await head(buckets.lake, key);
    if (!o) return { reason: `${key} is not enriched yet: use --step enrich` };
    let provenance: ReturnType<typeof fromMetadata>;
    try {
      provenance = fromMetadata(o.metadata);
    } catch (err) {
      return { reason: `${key}: ${(err as Error).message}: use --step enrich` };
    }
    messages.push({
      kind: 'data',
      table: parseDataKey(key)!.table,
      bucket: buckets.lake,
      key,
      eTag: o.eTag,
      // Not counted here; the writer records the rows it inserts.
      rows: 0,
      sourceKey: provenance.sourceKey,
      sourceETag: provenance.sourceETag,
      rawCreatedAt: provenance.sourceCreatedAt,
      enrichedAt: o.lastModified.toISOString(),
      reprocess: run,
    });
  }
  return {
    planned: { raw, sent: messages.map((m) => m.key), manifestKey, enriched },
    out: messages.map((m) => ({
      queue: 'warehouse',
      entry: {
        MessageBody: JSON.stringify(m),
        MessageGroupId: WAREHOUSE_GROUP,
        MessageDeduplicationId: deduplicationId(m.key, m.eTag, run.id),
      },
      names: `s3://${buckets.lake}/${m.key}`,
    })),
  };
}

interface Bar {
  start(total: number): void;
  increment(n?: number): void;
  update(value: number): void;
  stop(): void;
}

function progressBar(show: boolean, format: string): Bar {
  if (!show) return { start() {}, increment() {}, update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format, hideCursor: true, clearOnComplete: true, fps: 8, barsize: 28 },
    cliProgress.Presets.shades_classic,
  );
  return {
    start: (total) => bar.start(total, 0),
    increment: (n = 1) => bar.increment(n),
    update: (v) => bar.update(v),
    stop: () => bar.stop(),
  };
}

/** Sends the messages ten per SendMessageBatch, four calls at a time; entries SQS refuses are tried again. */
async function sendAll(target: Target, out: Outgoing[], bar: Bar): Promise<void> {
  const batches: { queueUrl: string; entries: SendMessageBatchRequestEntry[] }[] = [];
  for (const queue of new Set(out.map((o) => o.queue))) {
    const mine = out.filter((o) => o.queue === queue);
    for (let i = 0; i < mine.length; i += 10) {
      batches.push({
        queueUrl: target.queueUrls[queue],
        entries: mine.slice(i, i + 10).map((o, j) => ({ ...o.entry, Id: String(j) })),
      });
    }
  }
  let sent = 0;
  await forEachConcurrent(batches, 4, async ({ queueUrl, entries: all }) => {
    let entries = all;
    for (let attempt = 1; entries.length > 0; attempt++) {
      const res = await target.sqs.send(
        new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }),
      );
      const failed = new Set((res.Failed ?? []).map((f) => f.Id));
      sent += entries.length - failed.size;
      bar.update(sent);
      if (failed.size === 0) break;
      const first = res.Failed![0]!;
      if (first.SenderFault || attempt === 3) {
        throw new Error(
          `${failed.size} message(s) not sent to ${queueUrl}: ${first.Code} ${first.Message ?? ''} (${sent} of ${out.length} sent; running the command again is harmless)`,
        );
      }
      entries = entries.filter((e) => failed.has(e.Id));
      await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
    }
  });
}

/**
 * Chooses the raw objects, sends them (unless `dryRun`) and, with `wait`, follows them through the
 * pipeline. Lines of output go to `write`; progress bars to stderr when it is a terminal.
 */
export async function reprocess(
  target: Target,
  opts: ReprocessOptions,
  write: (line: string) => void,
): Promise<ReprocessReport> {
  const step = checkStep(opts.step);
  const from = checkDay('from', opts.from);
  const to = checkDay('to', opts.to);
  if (from && to && from > to) throw new Error(`--from ${from} is after --to ${to}`);
  const timeout = checkTimeout(opts.timeout);
  const bars = opts.bars ?? Boolean(process.stderr.isTTY);
  const { factory } = opts;
  const { s3, buckets } = target;

  const configured = await configuredFactories();
  const inBucket = await factoriesInBucket(s3, buckets.raw);
  if (!FACTORY_ID.test(factory) || !(configured.ids.includes(factory) || inBucket.includes(factory))) {
    const known = [...new Set([...configured.ids, ...inBucket])].sort();
    throw new Error(
      `no factory "${factory}"; known: ${known.length > 0 ? known.join(', ') : 'none'} (from ${configured.file}${configured.problem ? `, which does not load: ${configured.problem}` : ''}, and the folders of s3://${buckets.raw}/ in ${target.label})`,
    );
  }

  const matches = keyMatcher(opts.key);
  const chosen: RawObject[] = [];
  let undated = 0;
  for await (const o of listRaw(buckets.raw, `${factory}/`)) {
    if (!matches(o.key)) continue;
    if (from || to) {
      const day = dateOfRawKey(o.key);
      if (!day) {
        undated++;
        continue;
      }
      if ((from && day < from) || (to && day > to)) continue;
    }
    chosen.push(o);
  }
  const run = newReprocess();
  const what = [
    from || to ? `${from ?? '…'} to ${to ?? '…'}` : undefined,
    opts.key ? `key ${opts.key}` : undefined,
  ].filter(Boolean);
  const selection = `factory "${factory}"${what.length ? ` (${what.join(', ')})` : ''}`;
  const queue: ReprocessReport['queue'] = step;
  const report: ReprocessReport = {
    run,
    step,
    objects: chosen.map((o) => o.key),
    messages: 0,
    queue,
    skipped: [],
    dryRun: Boolean(opts.dryRun),
  };
  if (undated > 0)
    write(`${undated} object(s) left out: no yyyy/mm/dd in their key to compare with --from/--to`);
  if (chosen.length === 0) {
    write(`no raw object of ${selection} in s3://${buckets.raw}/${factory}/: nothing to send`);
    return report;
  }

  // What to send: for the later steps this reads each file's manifest (and heads its lake objects).
  const planned: Planned[] = [];
  const out: Outgoing[] = [];
  const results: Awaited<ReturnType<typeof plan>>[] = new Array(chosen.length);
  await forEachConcurrent(chosen, 8, async (raw, i) => {
    results[i] = await plan(target, run, step, raw);
  });
  results.forEach((r, i) => {
    if ('reason' in r) report.skipped.push({ key: chosen[i]!.key, reason: r.reason });
    else {
      planned.push(r.planned);
      out.push(...r.out);
    }
  });
  report.messages = out.length;

  if (opts.dryRun) {
    for (const o of out) write(`would send to ${o.queue}: ${o.names}`);
    for (const s of report.skipped) write(`would skip ${s.key}: ${s.reason}`);
    write(
      `dry run: ${out.length} message(s) for ${planned.length} raw object(s) of ${selection} would go to the ${queue} queue (step ${step}, ${target.label}); nothing was sent`,
    );
    return report;
  }

  // The warehouse step waits for loads after the latest one before sending (the writer's clock).
  const reader = opts.wait ? await openReader(target.buckets.warehouse) : undefined;
  try {
    const since = reader && step === 'warehouse' ? await latestLoad(reader.reader) : undefined;
    const bar = progressBar(bars, ` sending {bar} {value}/{total} message(s) to ${queue}`);
    bar.start(out.length);
    try {
      await sendAll(target, out, bar);
    } finally {
      bar.stop();
    }
    write(
      `reprocess ${run.id}: sent ${out.length} message(s) for ${planned.length} raw object(s) of ${selection} to the ${queue} queue (step ${step}, ${target.label})`,
    );
    for (const s of report.skipped) write(`  skipped ${s.key}: ${s.reason}`);
    if (!reader) {
      if (planned.length > 0) write('add --wait to follow them into the warehouse');
      return report;
    }
    report.wait = await follow(target, reader.reader, run, step, planned, {
      timeoutSeconds: timeout,
      pollSeconds: opts.pollSeconds ?? 2,
      since,
      bars,
    });
    printOutcome(report.wait, write, timeout);
    return report;
  } finally {
    await reader?.close();
  }
}

type Reader = import('../functions/warehouse/query.js').WarehouseReader;

/** A reader of the warehouse in a folder of its own (removed on close). */
async function openReader(bucket: string): Promise<{ reader: Reader; close(): Promise<void> }> {
  const { WarehouseReader } = await import('../functions/warehouse/query.js');
  const dir = await mkdtemp(join(tmpdir(), 'tp-reprocess-'));
  const reader = new WarehouseReader(bucket, dir);
  return {
    reader,
    async close() {
      await reader.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The warehouse writer's time of its latest load (microseconds since the epoch), '0' before any. */
async function latestLoad(reader: Reader): Promise<string> {
  const r = await reader.query(
    'SELECT CAST(coalesce(max(epoch_us(loaded_at)), 0) AS VARCHAR) AS t FROM ledger',
  );
  return String(r?.rows[0]?.t ?? '0');
}

/**
 * Checks the objects every `pollSeconds` until each is through, or the time is up. Through means, per
 * step — etl: the manifest records this run, every enriched object it leads to was made by this run and
 * the ledger holds that version, and the ledger holds the manifest's version; enrich: the same for the
 * enriched objects and the manifest; warehouse: each object sent was loaded after the run began.
 */
async function follow(
  target: Target,
  reader: Reader,
  run: Reprocess,
  step: ReprocessStep,
  planned: Planned[],
  o: { timeoutSeconds: number; pollSeconds: number; since?: string; bars: boolean },
): Promise<NonNullable<ReprocessReport['wait']>> {
  const started = Date.now();
  const deadline = started + o.timeoutSeconds * 1000;
  const { buckets } = target;
  const factory = planned[0]?.raw.key.split('/', 1)[0] ?? '';
  const pending = new Map(planned.map((p) => [p.raw.key, p]));
  const waitingFor = new Map<string, string>(planned.map((p) => [p.raw.key, step]));
  /** Enriched objects seen made by this run and loaded. */
  const confirmed = new Set<string>();
  const manifests = new Map<string, { eTag: string; manifest?: Manifest }>();
  const reloaded = new Set<string>();
  let since = o.since ?? '0';
  const bar = progressBar(o.bars, ' waiting {bar} {value}/{total} object(s) through the warehouse');
  bar.start(planned.length);
  try {
    while (pending.size > 0 && Date.now() < deadline) {
      const ledger = (await reader.ledger()) ?? new Map<string, { eTag: string; kind: string }>();
      /** A file past the warehouse's retention is through once its manifest's version is retired. */
      const retired = (p: Planned, eTag?: string) => {
        const row = ledger.get(p.manifestKey);
        return row?.kind === RETIRED && (eTag === undefined || row.eTag === eTag);
      };
      if (step === 'warehouse') {
        // Loads since the run began, read in order of load time (a batch's objects share its time).
        for (;;) {
          const r = await reader.query(
            `SELECT lake_key, CAST(epoch_us(loaded_at) AS VARCHAR) AS t FROM ledger
             WHERE epoch_us(loaded_at) > CAST($since AS BIGINT) ORDER BY loaded_at LIMIT 5000`,
            { since },
          );
          const rows = r?.rows ?? [];
          for (const row of rows) reloaded.add(String(row.lake_key));
          if (rows.length < 5000) break;
          // The last load time may go on in the next page: read from just before it.
          since = String(BigInt(String(rows.at(-1)!.t)) - 1n);
        }
        for (const [key, p] of pending) {
          if (p.sent.every((k) => reloaded.has(k)) || retired(p)) pending.delete(key);
          else waitingFor.set(key, 'warehouse');
        }
      } else {
        // The manifests' versions: a HEAD each while few are left, else one listing of the factory's.
        const listed = new Map<string, string>();
        if (pending.size <= 200) {
          await forEachConcurrent([...pending.values()], 8, async (p) => {
            const m = await head(buckets.lake, p.manifestKey);
            if (m) listed.set(p.manifestKey, m.eTag);
          });
        } else {
          for await (const m of listRaw(buckets.lake, `${MANIFESTS_PREFIX}factory=${factory}/`)) {
            listed.set(m.key, m.eTag);
          }
        }
        /** 'done', or the stage the object waits for. */
        const through = async (p: Planned): Promise<string> => {
          const eTag = listed.get(p.manifestKey);
          if (eTag === undefined) return 'etl';
          let known = manifests.get(p.manifestKey);
          if (known?.eTag !== eTag) {
            const got = await getManifest(buckets.lake, p.manifestKey);
            known = { eTag: got?.eTag ?? '', manifest: got?.manifest };
            manifests.set(p.manifestKey, known);
          }
          let enriched = p.enriched ?? [];
          if (step === 'etl') {
            const { manifest } = known;
            if (manifest?.reprocess?.id !== run.id) return 'etl';
            enriched = normalizedOutputs(manifest).map((k) => enrichedKey(k));
          }
          for (const key of enriched) {
            if (confirmed.has(key)) continue;
            const o = await head(buckets.lake, key);
            if (!o || madeBy(o.metadata) !== run.id) return 'enrich';
            // Past the warehouse's retention, the file's objects are not loaded: its manifest is retired.
            if (ledger.get(key)?.eTag !== o.eTag && !retired(p, known.eTag)) return 'warehouse';
            confirmed.add(key);
          }
          return ledger.get(p.manifestKey)?.eTag === known.eTag ? 'done' : 'warehouse';
        };
        await forEachConcurrent([...pending.values()], 8, async (p) => {
          const state = await through(p);
          if (state === 'done') pending.delete(p.raw.key);
          else waitingFor.set(p.raw.key, state);
        });
      }
      bar.update(planned.length - pending.size);
      if (pending.size > 0) await new Promise((r) => setTimeout(r, o.pollSeconds * 1000));
    }
  } finally {
    bar.stop();
  }
  const done = planned.map((p) => p.raw.key).filter((k) => !pending.has(k));
  return {
    done,
    pending: [...pending.keys()].map((key) => ({ key, waitingFor: waitingFor.get(key) ?? step })),
    seconds: (Date.now() - started) / 1000,
    files: await outcomes(reader, done),
  };
}

/** The reprocess run that made a lake object, from its metadata. */
function madeBy(metadata: Record<string, string>): string | undefined {
  try {
    return fromMetadata(metadata).reprocessId;
  } catch {
    return undefined;
  }
}

/** `pipeline_files` rows of these raw keys, a few hundred keys per query. */
async function outcomes(reader: Reader, keys: string[]): Promise<FileOutcome[]> {
  const out: FileOutcome[] = [];
  for (let i = 0; i < keys.length; i += 500) {
    const r = await reader.query(
      `SELECT source_key, status, complete, lines_total, lines_loaded, lines_rejected, rows_loaded, quarantine_reason
       FROM pipeline_files WHERE source_key IN (SELECT unnest(from_json($keys, '["VARCHAR"]'))) ORDER BY source_key`,
      { keys: JSON.stringify(keys.slice(i, i + 500)) },
    );
    for (const row of r?.rows ?? []) {
      out.push({
        key: String(row.source_key),
        status: String(row.status),
        complete: row.complete === true,
        linesTotal: Number(row.lines_total),
        linesLoaded: Number(row.lines_loaded),
        linesRejected: Number(row.lines_rejected),
        rowsLoaded: Number(row.rows_loaded),
        ...(row.quarantine_reason ? { quarantineReason: String(row.quarantine_reason) } : {}),
      });
    }
  }
  return out;
}

const n = (x: number) => x.toLocaleString('en-US');

function printOutcome(
  w: NonNullable<ReprocessReport['wait']>,
  write: (line: string) => void,
  timeout: number,
): void {
  const sum = (f: (o: FileOutcome) => number) => w.files.reduce((a, o) => a + f(o), 0);
  const quarantined = w.files.filter((f) => f.status === 'quarantined');
  const incomplete = w.files.filter((f) => f.status !== 'quarantined' && !f.complete);
  write(
    `${w.done.length} file(s) through in ${formatDuration(w.seconds)}: lines ${n(sum((f) => f.linesLoaded))} loaded, ${n(sum((f) => f.linesRejected))} rejected; ${n(sum((f) => f.rowsLoaded))} row(s) in the warehouse${quarantined.length ? `; ${quarantined.length} quarantined` : ''}${incomplete.length ? `; ${incomplete.length} incomplete` : ''}`,
  );
  const worth = w.files.length <= 20 ? w.files : w.files.filter((f) => !f.complete || f.linesRejected > 0);
  for (const f of worth) {
    write(
      `  ${f.key}: ${
        f.status === 'quarantined'
          ? `quarantined (${f.quarantineReason ?? 'see its manifest'})`
          : `${n(f.linesLoaded)} of ${n(f.linesTotal)} line(s) loaded, ${n(f.linesRejected)} rejected, ${n(f.rowsLoaded)} row(s)${f.complete ? '' : ', incomplete'}`
      }`,
    );
  }
  if (w.pending.length > 0) {
    const shown = w.pending.slice(0, 10).map((p) => `${p.key} (waiting for ${p.waitingFor})`);
    write(
      `not through after ${formatDuration(timeout)}: ${w.pending.length} object(s): ${shown.join(', ')}${w.pending.length > 10 ? ` and ${w.pending.length - 10} more` : ''}. The pipeline may still be busy (queue depths, dead-letter queues, the functions' logs say more); wait longer with --timeout`,
    );
  }
}

/** The command: exit code 0; 1 when objects could not be sent from the step asked for, or `--wait` timed out. */
export async function runReprocess(
  target: Target,
  opts: ReprocessOptions,
  write: (text: string) => void,
): Promise<number> {
  try {
    const report = await reprocess(target, opts, (line) => write(`${line}\n`));
    const unsent = !report.dryRun && report.skipped.length > 0;
    return unsent || (report.wait && report.wait.pending.length > 0) ? 1 : 0;
  } finally {
    target.s3.destroy();
    target.sqs.destroy();
  }
}
