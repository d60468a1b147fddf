import { mkdtemp, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { DeleteObjectsCommand } from '@aws-sdk/client-s3';
import type { DuckDBInstance } from '@duckdb/node-api';
import { withConnection } from '../core/duckdb.js';
import { isDiskFull, PermanentObjectError, TempSpaceError } from '../core/errors.js';
import { type Manifest, manifestSchema } from '../core/manifest.js';
import {
  enrichedKey,
  FACTORY_ID,
  factoryOfKey,
  manifestKey,
  NORMALIZED_PREFIX,
  normalizedKey,
  objectId,
  quarantinedFileKey,
  rejectsKey,
} from '../core/object-keys.js';
import { getJson, type ObjectInfo, openObject, putJson, s3, uploadFile } from '../core/s3.js';
import type { S3ObjectEvent } from '../core/s3-event.js';
import { type EtlTextOutcome, etlText, tempBytesNeeded } from './etl-text.js';
import { type FactoriesConfig, type Factory, ruleForKey } from './factories.js';

export interface EtlDeps {
  factories: FactoriesConfig;
  db: DuckDBInstance;
  lakeBucket: string;
  tmpDir: string;
  maxLineBytes: number;
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
 * is retried and rewrites the same output keys.
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
  if (previous.success && event.eTag && previous.data.source.eTag === event.eTag) {
    return { status: 'duplicate', manifest: previous.data };
  }

  const { body, info } = await openObject(event.bucket, event.key);
  if (previous.success && previous.data.source.eTag === info.eTag) {
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
        etlText(c, decompressed(), {
          dir: work,
          maxLineBytes: deps.maxLineBytes,
          fileRule: ruleForKey(factory, event.key),
          factory: factory.id,
          factoryTimeZone: factory.timezone,
          sourceKey: event.key,
          id,
          defaultDevice: defaultDevice(event.key),
          referenceTime: info.lastModified,
        }),
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
    for (const file of result.files) {
      const key = file.kind === 'rejects' ? rejectsKey(file.relativePath) : normalizedKey(file.relativePath);
      await uploadFile(deps.lakeBucket, key, file.path, 'application/vnd.apache.parquet', {
        // S3 metadata is ASCII: the key is URI-encoded.
        'source-key': encodeURIComponent(event.key),
        'source-bucket': event.bucket,
        'source-etag': info.eTag,
        'source-created-at': info.lastModified.toISOString(),
      });
      outputs.push(key);
    }
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
    };
    await putJson(deps.lakeBucket, mKey, manifest);
    return { status: 'loaded', manifest };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** `plant/2024/01/02/press-07.csv.gz` → `press-07`. */
export function defaultDevice(key: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1);
  return name.replace(/(\.(gz|log|txt|csv|tsv|jsonl|json|ndjson|syslog))+$/i, '') || name;
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
  };
  await putJson(deps.lakeBucket, manifestKey(meta.factory, event.bucket, event.key), manifest);
  return { status: 'quarantined', manifest };
}
