import type { Readable } from 'node:stream';
import { type DigestAlgorithm, DigestStream } from './digests.js';
import { S3Error } from './errors.js';
import { headerValue } from './http-headers.js';
import type { StoredObject } from './object-index.js';
import { evaluateRead, readConditions } from './preconditions.js';
import type { ByteRange } from './range.js';
import { requestBody } from './request-body.js';
import type { RequestContext } from './request-context.js';

/** A body received and installed among the bodies, not yet referenced by the index. */
export interface NewBody {
  name: string;
  size: number;
  digests: DigestStream;
}

async function receive(
  ctx: RequestContext,
  streams: NodeJS.ReadableStream[],
  digests: DigestStream,
  verify: (received: DigestStream) => void = () => {},
): Promise<NewBody> {
  const { store } = ctx.emulator;
  const name = await store.receive([...streams, digests], ctx.signal);
  try {
    verify(digests);
    await store.install(name);
  } catch (err) {
    await store.discard(name);
    throw err;
  }
  return { name, size: digests.size, digests };
}

/** Receives the request's body, decoded and checked against what its headers announced. */
export function receiveRequestBody(ctx: RequestContext): Promise<NewBody> {
  const body = requestBody(ctx.req);
  return receive(ctx, body.streams, new DigestStream(body.digests), (received) => body.verify(received));
}

/** Receives a body the emulator produces itself (a copy, a concatenation of parts). */
export function receiveStream(
  ctx: RequestContext,
  source: Readable,
  digests: DigestAlgorithm[],
): Promise<NewBody> {
  return receive(ctx, [source], new DigestStream(digests));
}

/**
 * Runs `write`, the index transaction that makes `body` referenced; if it throws (a failed condition,
 * a bucket deleted meanwhile), the body is removed before the error propagates.
 */
export async function commit<T>(ctx: RequestContext, body: NewBody, write: () => T): Promise<T> {
  try {
    return write();
  } catch (err) {
    await ctx.emulator.store.remove([body.name]);
    throw err;
  }
}

/** The object named by `x-amz-copy-source` (`[/]bucket/key`, URL-encoded), opened for reading. */
export interface CopySource {
  object: StoredObject;
  fd: number;
  /** The `x-amz-copy-source-range` of an UploadPartCopy. */
  range: ByteRange | undefined;
}

/** Parses `x-amz-copy-source`. https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html */
export function copySourceName(ctx: RequestContext): { bucket: string; key: string } {
  const [path = '', version] = headerValue(ctx.req.headers, 'x-amz-copy-source')?.split('?') ?? [];
  if (version !== undefined && version !== 'versionId=null') {
    throw new S3Error('NotImplemented', 'Object versions are not supported.', {
      Header: 'x-amz-copy-source',
    });
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(path.replace(/^\//, ''));
  } catch {
    throw new S3Error('InvalidArgument', 'Invalid copy source encoding.', {
      ArgumentName: 'x-amz-copy-source',
    });
  }
  const slash = decoded.indexOf('/');
  if (slash <= 0 || slash === decoded.length - 1) {
    throw new S3Error(
      'InvalidArgument',
      'Copy Source must mention the source bucket and key: sourcebucket/sourcekey.',
      {
        ArgumentName: 'x-amz-copy-source',
      },
    );
  }
  return { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1) };
}

/**
 * Looks up the copy source, checks its `x-amz-copy-source-if-*` conditions (any failure is 412 for a
 * copy) and the range to copy, then opens its body: all in one tick, so that the body cannot be
 * replaced and unlinked in between (see BodyStore.openSync).
 */
export function openCopySource(
  ctx: RequestContext,
  name: { bucket: string; key: string },
  rangeHeader?: string,
): CopySource {
  const { index, store } = ctx.emulator;
  index.requireBucket(name.bucket);
  const object = index.getObject(name.bucket, name.key);
  if (!object) throw new S3Error('NoSuchKey', undefined, { Key: name.key });
  if (evaluateRead(readConditions(ctx.req.headers, 'x-amz-copy-source-'), object) !== 'proceed') {
    throw new S3Error('PreconditionFailed', undefined, { Condition: 'x-amz-copy-source-If' });
  }
  return { object, range: copyRange(rangeHeader, object.size), fd: store.openSync(object.body) };
}

/** `bytes=first-last`, within the source. https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPartCopy.html */
function copyRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d+)-(\d+)$/.exec(header.trim());
  if (!m) {
    throw new S3Error(
      'InvalidArgument',
      'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy',
      { ArgumentName: 'x-amz-copy-source-range' },
    );
  }
  const range = { start: Number(m[1]), end: Number(m[2]) };
  if (range.start > range.end || range.end >= size) {
    throw new S3Error('InvalidArgument', `Range specified is not valid for source object of size: ${size}`, {
      ArgumentName: 'x-amz-copy-source-range',
    });
  }
  return range;
}
