import { mkdtemp, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { DeleteObjectsCommand } from '@aws-sdk/client-s3';
import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { type FactoriesConfig, type Factory, ruleForKey } from '../contracts/factories.js';
import {
  dateOfRawKey,
  deviceOfRawKey,
  enrichedKey,
  FACTORY_ID,
  factoryOfKey,
  manifestKey,
  NORMALIZED_PREFIX,
  objectId,
  quarantinedFileKey,
} from '../contracts/keys.js';
import { type Manifest, manifestSchema } from '../contracts/manifest.js';
import { toMetadata } from '../contracts/provenance.js';
import { forEachConcurrent } from '../core/concurrency.js';
import { withConnection } from '../core/duckdb.js';
import { DeadlineError, isDiskFull, PermanentObjectError, TempSpaceError } from '../core/errors.js';
import { getJson, type ObjectInfo, openObject, putJson, s3, uploadFile } from '../core/s3.js';

import type { S3ObjectEvent } from '../core/s3-event.js';
import { type EtlTextOutcome, etlText, tempBytesNeeded } from './etl-text.js';

/** Lake objects uploaded at once. */
const UPLOAD_CONCURRENCY = 8;

export interface EtlDeps {
  factories: FactoriesConfig;
  db: DuckDBInstance;
  lakeBucket: string;
  tmpDir: string;
  maxLineBytes: number;
  /** Aborted at the function's deadline: the ETL stops (DuckDB is interrupted) and throws DeadlineError. */
  signal?: AbortSignal;
}

export type EtlOutcome =
  | { status: 'loaded' | 'quarantined'; manifest: Manifest }
  | { status: 'duplicate'; manifest: Manifest };

const GZIP_MAGIC = [0x1f, 0x8b];

/** Factory config for a key; an unknown factory gets defaults (UTC, auto-detect) rather than a failure. */
function factoryFor(config: FactoriesConfig, ref: { bucket: string; key: string }): Factory {
  const id = factoryOfKey(ref.key) ?? 'unassigned';
  if (!FACTORY_ID.test(id)) {
    throw new PermanentObjectError(
      ref,
      'bad-factory',
      `first path segment "${id}" is not a factory id (a-z, 0-9, -)`,
    );
  }
  return config.factories.get(id) ?? { id, name: id, timezone: 'UTC', files: [], sources: [] };
}

/** Reads the first bytes of a stream and gives back a stream that still yields everything. */
async function peek(body: Readable, bytes: number): Promise<{ head: Buffer; stream: Readable }> {
  const iterator = body[Symbol.asyncIterator]();
  const first = await iterator.next();
  const head: Buffer = first.done ? Buffer.alloc(0) : (first.value as Buffer);
  async function* all() {
    if (head.length > 0) yield head;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      yield next.value as Buffer;
    }
  }
  return { head: head.subarray(0, bytes), stream: Readable.from(all(), { objectMode: false }) };
}

/**
 * One raw object → normalized Parquet, rejects and a manifest in the lake. Idempotent: a replay of the
 * same object version is recognised by its manifest and skipped; a crash before the manifest is written
 * is retried and rewrites the same output keys. An event with a reprocess marker runs a version again
 * (with the rules as they are now): it rewrites the same output keys, deletes the outputs the earlier run
 * made that this one did not, and records the run in the manifest.
 */
export async function etlObject(event: S3ObjectEvent, deps: EtlDeps): Promise<EtlOutcome> {
  const startedAt = new Date();
  const ref = { bucket: event.bucket, key: event.key };
  let factory: Factory;
  try {
    factory = factoryFor(deps.factories, ref);
  } catch (err) {
    if (err instanceof PermanentObjectError) {
      return quarantine(
        deps,
        event,
        { id: objectId(event.bucket, event.key, event.eTag ?? ''), factory: 'unassigned', startedAt },
        err,
      );
    }
    throw err;
  }
  const mKey = manifestKey(factory.id, event.bucket, event.key);
  const previous = manifestSchema.safeParse(await getJson(deps.lakeBucket, mKey));
  // A reprocess run processes the version again, unless this manifest is that run's already (the
  // run's message delivered twice).
  const done = (eTag: string | undefined) =>
    previous.success &&
    eTag !== undefined &&
    previous.data.source.eTag === eTag &&
    (!event.reprocess || previous.data.reprocess?.id === event.reprocess.id);
  if (previous.success && done(event.eTag)) return { status: 'duplicate', manifest: previous.data };

  const { body, info } = await openObject(event.bucket, event.key);
  if (previous.success && done(info.eTag)) {
    body.destroy();
    return { status: 'duplicate', manifest: previous.data };
  }
  const id = objectId(event.bucket, event.key, info.eTag);
  let gzip = false;
  try {
    const { head, stream } = await peek(body, 2);
    gzip = head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1];
    return await etlVersion(event, deps, { id, factory, startedAt, info, previous, stream, gzip, mKey });
  } catch (err) {
    if (!isDiskFull(err)) throw err;
    // Measured once the work folder is gone: what a retry would have.
    const free = await statfs(deps.tmpDir).then(
      ({ bavail, bsize }) => bavail * bsize,
      () => 0,
    );
    throw new TempSpaceError(ref, deps.tmpDir, tempBytesNeeded(info.size, gzip), free, { cause: err });
  } finally {
    body.destroy();
  }
}

/** The ETL of one object version, in a work folder of its own that is removed whatever happens. */
async function etlVersion(
  event: S3ObjectEvent,
  deps: EtlDeps,
  version: {
    id: string;
    factory: Factory;
    startedAt: Date;
    info: ObjectInfo;
    previous: ReturnType<typeof manifestSchema.safeParse>;
    /** The object's bytes as stored (gzip'd or not). */
    stream: Readable;
    gzip: boolean;
    mKey: string;
  },
): Promise<EtlOutcome> {
  const { id, factory, startedAt, info, previous, stream, gzip, mKey } = version;
  const ref = { bucket: event.bucket, key: event.key };
  const work = await mkdtemp(join(deps.tmpDir, `etl-${id}-`));
  const meta = {
    id,
    factory: factory.id,
    startedAt,
    info,
    previousOutputs: previous.success ? previous.data.outputs : [],
  };
  try {
    /** The decompressed text. Made only where it is read at once: a gunzip error must meet a listener. */
    const decompressed = () => {
      if (!gzip) return stream;
      const gunzip = stream.pipe(createGunzip());
      stream.on('error', (err) => gunzip.destroy(err));
      return gunzip;
    };

    let text: EtlTextOutcome;
    try {
      text = await withConnection(deps.db, (c) =>
        untilAborted(deps.signal, c, stream, ref, startedAt, () =>
          etlText(c, decompressed(), {
            dir: work,
            maxLineBytes: deps.maxLineBytes,
            fileRule: ruleForKey(factory, event.key),
            factory: factory.id,
            factoryTimeZone: factory.timezone,
            sourceKey: event.key,
            id,
            defaultDevice: deviceOfRawKey(event.key),
            objectTime: info.lastModified,
            keyDate: dateOfRawKey(event.key),
            timestamps: deps.factories.limits.timestamps,
          }),
        ),
      );
    } catch (err) {
      if (gzip && (err as NodeJS.ErrnoException).code?.startsWith('Z_')) {
        return await quarantine(
          deps,
          event,
          meta,
          new PermanentObjectError(ref, 'corrupt-gzip', `corrupt gzip: ${(err as Error).message}`, {
            cause: err,
          }),
          gzip,
        );
      }
      throw err;
    }
    if (text.kind === 'binary') {
      return await quarantine(
        deps,
        event,
        meta,
        new PermanentObjectError(
          ref,
          'binary-object',
          'binary object (NUL bytes in the first 8 KiB), not a text log',
        ),
        gzip,
      );
    }
    if (text.kind === 'empty') {
      return await quarantine(
        deps,
        event,
        meta,
        new PermanentObjectError(ref, 'empty-object', 'empty object: no lines'),
        gzip,
      );
    }
    const { split, rule, result } = text;

    const outputs: string[] = [];
    const provenance = toMetadata({
      sourceBucket: event.bucket,
      sourceKey: event.key,
      sourceETag: info.eTag,
      sourceCreatedAt: info.lastModified.toISOString(),
      reprocessId: event.reprocess?.id,
    });
    // A few at a time: a file spanning a year has an object per day.
    await forEachConcurrent(result.files, UPLOAD_CONCURRENCY, async (file) => {
      await uploadFile(deps.lakeBucket, file.key, file.path, 'application/vnd.apache.parquet', provenance);
    });
    outputs.push(...result.files.map((f) => f.key));
    if (previous.success) await deleteStale(deps.lakeBucket, previous.data.outputs, outputs);

    const finishedAt = new Date();
    const manifest: Manifest = {
      id,
      status: 'loaded',
      source: {
        bucket: event.bucket,
        key: event.key,
        eTag: info.eTag,
        size: info.size,
        createdAt: info.lastModified.toISOString(),
      },
      factory: factory.id,
      format: rule.format,
      table: rule.table,
      detected: rule.detected,
      gzip,
      lines: result.lines,
      rows: result.rows,
      rejectReasons: result.rejectReasons,
      outputs,
      bytes: split.bytes,
      seconds: (finishedAt.getTime() - startedAt.getTime()) / 1000,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      minTs: result.minTs,
      maxTs: result.maxTs,
      multilineRecords: result.multilineRecords,
      lineEndings: split.loneCr ? 'cr' : undefined,
      warnings: warnings(result.lines, deps.factories.limits.maxRejectRatio),
      ...(event.reprocess ? { reprocess: event.reprocess } : {}),
    };
    await putJson(deps.lakeBucket, mKey, manifest);
    return { status: 'loaded', manifest };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Runs `work` on connection `c` reading `stream`; when `signal` aborts, interrupts the query, ends the
 * stream and throws DeadlineError once `work` has stopped (so that nothing still writes into the work
 * folder when it is removed).
 */
async function untilAborted<T>(
  signal: AbortSignal | undefined,
  c: DuckDBConnection,
  stream: Readable,
  ref: { bucket: string; key: string },
  startedAt: Date,
  work: () => Promise<T>,
): Promise<T> {
  if (!signal) return work();
  const stop = () => {
    c.interrupt();
    stream.destroy(new Error('deadline'));
  };
  if (signal.aborted) stop();
  signal.addEventListener('abort', stop, { once: true });
  try {
    return await work();
  } catch (err) {
    if (signal.aborted)
      throw new DeadlineError(ref, (Date.now() - startedAt.getTime()) / 1000, { cause: err });
    throw err;
  } finally {
    signal.removeEventListener('abort', stop);
  }
}

/**
 * What the manifest should tell about a file that loaded: more rejected lines than the limit allows
 * (its good lines are loaded all the same).
 */
export function warnings(lines: Manifest['lines'], maxRejectRatio: number): string[] | undefined {
  const data = lines.total - lines.blank - lines.header;
  if (data === 0 || lines.rejected / data <= maxRejectRatio) return undefined;
  const pct = (x: number) => `${Math.round(x * 1000) / 10}%`;
  return [
    `rejected ${lines.rejected} of ${data} lines (${pct(lines.rejected / data)}), over limits.maxRejectRatio ${pct(maxRejectRatio)}: check the rule for this file`,
  ];
}

/**
 * Outputs of an earlier version of the same key that the new version did not rewrite, with the
 * enriched twins of its normalized objects: the lake then holds only what the current version made.
 */
async function deleteStale(bucket: string, before: string[], after: string[]): Promise<void> {
  const keep = new Set(after);
  const stale = before
    .filter((k) => !keep.has(k))
    .flatMap((k) => (k.startsWith(NORMALIZED_PREFIX) ? [k, enrichedKey(k)] : [k]));
  if (stale.length === 0) return;
  await s3().send(
    new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: stale.map((Key) => ({ Key })) } }),
  );
}

/** Whole-file quarantine: the raw object stays where it is; a record and a manifest say why. */
async function quarantine(
  deps: EtlDeps,
  event: S3ObjectEvent,
  meta: {
    id: string;
    factory: string;
    startedAt: Date;
    info?: { eTag: string; size: number; lastModified: Date };
    /** What an earlier version of the key produced: replaced by the quarantine record. */
    previousOutputs?: string[];
  },
  error: PermanentObjectError,
  gzip = false,
): Promise<EtlOutcome> {
  const finishedAt = new Date();
  const record = {
    bucket: event.bucket,
    key: event.key,
    eTag: meta.info?.eTag ?? event.eTag ?? '',
    code: error.code,
    reason: error.message,
    at: finishedAt.toISOString(),
  };
  const recordKey = quarantinedFileKey(meta.factory, meta.id);
  await putJson(deps.lakeBucket, recordKey, record);
  await deleteStale(deps.lakeBucket, meta.previousOutputs ?? [], [recordKey]);
  const manifest: Manifest = {
    id: meta.id,
    status: 'quarantined',
    source: {
      bucket: event.bucket,
      key: event.key,
      eTag: record.eTag,
      size: meta.info?.size ?? event.size ?? 0,
      createdAt: (meta.info?.lastModified ?? meta.startedAt).toISOString(),
    },
    factory: meta.factory,
    gzip,
    lines: { total: 0, loaded: 0, rejected: 0, blank: 0, header: 0 },
    rows: { readings: 0, events: 0 },
    rejectReasons: {},
    quarantine: { code: error.code, reason: error.message },
    outputs: [recordKey],
    bytes: meta.info?.size ?? 0,
    seconds: (finishedAt.getTime() - meta.startedAt.getTime()) / 1000,
    startedAt: meta.startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    ...(event.reprocess ? { reprocess: event.reprocess } : {}),
  };
  await putJson(deps.lakeBucket, manifestKey(meta.factory, event.bucket, event.key), manifest);
  return { status: 'quarantined', manifest };
}
