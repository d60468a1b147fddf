import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { startFauxqs } from 'fauxqs';
import S3rver from 's3rver';
import { logger } from '../functions/core/logger.js';
import type { LocalSettings } from './settings.js';

const require = createRequire(import.meta.url);

/** What an emulator reports when an object is created; the runtime turns it into an AWS-format event. */
export interface CreatedObject {
  bucket: string;
  key: string;
  size?: number;
  eTag?: string;
  eventName: string;
}

export interface Emulator {
  name: string;
  stop(): Promise<void>;
}

interface S3rverObject {
  bucket: string;
  key: string;
  content: Buffer | NodeJS.ReadableStream;
  metadata: Record<string, string>;
}
interface FilesystemStoreProto {
  getResourcePath(bucket: string, key: string, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5: string): Promise<void>;
  putObject(object: S3rverObject): Promise<{ size: number; md5: string }>;
}

/**
 * s3rver writes an object in place while it streams in (and reports success before the file is
 * flushed), so a concurrent GET can read a truncated object — S3 never shows a partial object. This
 * replaces its `putObject` with a write to a temporary file and an atomic rename. s3rver is no longer
 * maintained upstream, so the fix lives here.
 */
function makeS3rverWritesAtomic(tmpDir: string): void {
  const Store = require('s3rver/lib/stores/filesystem.js') as { prototype: FilesystemStoreProto };
  Store.prototype.putObject = async function putObject(this: FilesystemStoreProto, object: S3rverObject) {
    const target = this.getResourcePath(object.bucket, object.key, 'object');
    await mkdir(dirname(target), { recursive: true });
    // Outside the store's folder: s3rver lists objects by walking it.
    await mkdir(tmpDir, { recursive: true });
    const tmp = join(tmpDir, `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
    const md5 = createHash('md5');
    let size = 0;
    const source = Buffer.isBuffer(object.content)
      ? Readable.from([object.content])
      : (object.content as Readable);
    await pipeline(
      source,
      new Transform({
        transform(chunk: Buffer, _enc, done) {
          md5.update(chunk);
          size += chunk.length;
          done(null, chunk);
        },
      }),
      createWriteStream(tmp),
    );
    const digest = md5.digest('hex');
    await rename(tmp, target);
    await this.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  };
}

interface S3rverContext {
  params: { bucket: string; key: string };
  headers: Record<string, string | undefined>;
  store: {
    existsObject(bucket: string, key: string): Promise<boolean>;
    getMetadata(bucket: string, key: string): Promise<{ etag: string }>;
  };
}

/**
 * S3 honours `If-Match` and `If-None-Match: *` on PUT (conditional writes, which the warehouse writer
 * commits with); s3rver ignores them. This checks them before s3rver's own PUT, one request at a time
 * per key (S3 lets exactly one of two racing conditional writes succeed), and answers as S3 does: 412,
 * or 404 for If-Match on a key that does not exist.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
 */
function makeS3rverWritesConditional(): void {
  const controller = require('s3rver/lib/controllers/object.js') as {
    putObject(ctx: S3rverContext): Promise<void>;
  };
  const S3Error = require('s3rver/lib/models/error.js') as new (
    code: string,
    message: string,
    detail?: Record<string, string>,
  ) => Error;
  const original = controller.putObject;
  if ((original as { conditional?: boolean }).conditional) return;
  const queues = new Map<string, Promise<unknown>>();
  const strip = (eTag: string) => eTag.trim().replace(/^W\//, '').replace(/"/g, '');
  const conditional = async (ctx: S3rverContext): Promise<void> => {
    const ifMatch = ctx.headers['if-match'];
    const ifNoneMatch = ctx.headers['if-none-match'];
    if (ifMatch === undefined && ifNoneMatch === undefined) return original(ctx);
    const { bucket, key } = ctx.params;
    const id = `${bucket}/${key}`;
    const run = async () => {
      const exists = await ctx.store.existsObject(bucket, key);
      const current = exists ? strip((await ctx.store.getMetadata(bucket, key)).etag) : undefined;
      // As S3: If-Match on a key that does not exist is 404 NoSuchKey, a failed condition 412.
      if (ifMatch !== undefined && !exists) {
        throw new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: key });
      }
      const failed = (ifNoneMatch === '*' && exists) || (ifMatch !== undefined && current !== strip(ifMatch));
      if (failed) {
        throw new S3Error(
          'PreconditionFailed',
          'At least one of the pre-conditions you specified did not hold',
          {
            Condition: ifMatch !== undefined ? 'If-Match' : 'If-None-Match',
          },
        );
      }
      await original(ctx);
    };
    const previous = queues.get(id) ?? Promise.resolve();
    const mine = previous.then(run, run);
    queues.set(id, mine);
    try {
      await mine;
    } finally {
      if (queues.get(id) === mine) queues.delete(id);
    }
  };
  controller.putObject = Object.assign(conditional, { conditional: true });
}

/**
 * The embedded S3: s3rver, storing objects on disk under `<data>/s3` so a restart keeps them.
 * s3rver ships with one fixed key pair; the runtime registers the configured one (minioadmin by
 * default) in s3rver's account model so that signed requests from any S3 client verify.
 * s3rver's own event records differ from AWS's (unencoded keys, `ObjectCreated:Post` for multipart),
 * so only bucket, key, size and ETag are taken from them.
 */
export async function startS3(
  settings: LocalSettings,
  onCreated: (o: CreatedObject) => void,
): Promise<Emulator> {
  const directory = join(settings.PIPELINE_DATA, 's3');
  makeS3rverWritesAtomic(join(settings.PIPELINE_DATA, 's3-incoming'));
  makeS3rverWritesConditional();
  await mkdir(directory, { recursive: true });
  const account = require('s3rver/lib/models/account.js') as {
    DUMMY_ACCOUNT: { createKeyPair(id: string, secret: string): void };
  };
  account.DUMMY_ACCOUNT.createKeyPair(settings.AWS_ACCESS_KEY_ID, settings.AWS_SECRET_ACCESS_KEY);
  const server = new S3rver({
    port: settings.S3_PORT,
    address: '127.0.0.1',
    directory,
    silent: true,
    vhostBuckets: false,
  });
  server.on(
    'event',
    (event: {
      Records: {
        eventName: string;
        s3: { bucket: { name: string }; object: { key: string; size?: number; eTag?: string } };
      }[];
    }) => {
      for (const r of event.Records) {
        if (!r.eventName.startsWith('ObjectCreated:')) continue;
        onCreated({
          bucket: r.s3.bucket.name,
          key: r.s3.object.key,
          size: r.s3.object.size,
          eTag: r.s3.object.eTag,
          eventName:
            r.eventName === 'ObjectCreated:Post' ? 'ObjectCreated:CompleteMultipartUpload' : r.eventName,
        });
      }
    },
  );
  await server.run();
  logger.info({ endpoint: settings.s3Endpoint, directory }, 'embedded S3 (s3rver) listening');
  return { name: 's3', stop: () => server.close() };
}

interface FauxqsQueue {
  fifoLockedGroups: Map<string, number>;
  dequeueFifo(maxCount: number, visibility: number | undefined, dlqResolver: unknown): unknown[];
}

/**
 * fauxqs hands out one message per FIFO message group per receive (its loop breaks after the first),
 * where SQS returns up to 10 messages of a group, in order — the batching the single warehouse writer
 * relies on. This wraps its FIFO dequeue to take more of the same group within one receive, keeping
 * groups locked by earlier receives locked. (fauxqs exports only its server; the module is loaded by
 * file URL, the same instance the server uses.)
 */
async function batchFauxqsFifoReceives(): Promise<void> {
  // fauxqs's exports map hides its files from require.resolve; look in the node_modules it resolves from.
  const file = (require.resolve.paths('fauxqs') ?? [])
    .map((dir) => join(dir, 'fauxqs', 'dist', 'sqs', 'sqsStore.js'))
    .find((candidate) => existsSync(candidate));
  if (!file) throw new Error('fauxqs not installed (run npm install)');
  const { SqsQueue } = (await import(pathToFileURL(file).href)) as {
    SqsQueue: { prototype: FauxqsQueue & { __batched?: boolean } };
  };
  if (SqsQueue.prototype.__batched) return;
  const original = SqsQueue.prototype.dequeueFifo;
  SqsQueue.prototype.dequeueFifo = function dequeueFifo(
    this: FauxqsQueue,
    maxCount,
    visibility,
    dlqResolver,
  ) {
    const before = new Map(this.fifoLockedGroups);
    const added = new Map<string, number>();
    const out: unknown[] = [];
    while (out.length < Math.min(maxCount, 10)) {
      const got = original.call(this, 1, visibility, dlqResolver);
      if (got.length === 0) break;
      out.push(...got);
      for (const [group, n] of this.fifoLockedGroups) {
        const extra = n - (before.get(group) ?? 0);
        if (extra > 0) added.set(group, (added.get(group) ?? 0) + extra);
      }
      this.fifoLockedGroups = new Map(before);
    }
    for (const [group, n] of added) this.fifoLockedGroups.set(group, (before.get(group) ?? 0) + n);
    return out;
  };
  SqsQueue.prototype.__batched = true;
}

/**
 * The embedded SQS: fauxqs (in memory: queues are re-created at start, and the runtime re-notifies raw
 * objects that have no manifest yet, so nothing uploaded is lost across a restart).
 */
export async function startSqs(settings: LocalSettings): Promise<Emulator> {
  await batchFauxqsFifoReceives();
  const server = await startFauxqs({
    port: settings.SQS_PORT,
    logger: false,
    host: '127.0.0.1',
    defaultRegion: settings.AWS_REGION,
  });
  logger.info({ endpoint: settings.sqsEndpoint }, 'embedded SQS (fauxqs) listening');
  return { name: 'sqs', stop: () => server.stop() };
}
