import { S3Error } from './errors.js';
import { headerValue } from './http-headers.js';
import { objectHeaders, storedHeaders } from './object-headers.js';
import type { StoredObject } from './object-index.js';
import {
  commit,
  copySourceName,
  type NewBody,
  openCopySource,
  receiveRequestBody,
  receiveStream,
} from './object-writes.js';
import { evaluateRead, readConditions, writeCondition } from './preconditions.js';
import { parseRange } from './range.js';
import { type Reply, type RequestContext, xmlReply } from './request-context.js';
import { element, s3Document } from './xml.js';

function newVersion(key: string, body: NewBody, headers: Record<string, string>): StoredObject {
  return {
    key,
    body: body.name,
    size: body.size,
    etag: body.digests.digest('md5').toString('hex'),
    modifiedMs: Date.now(),
    headers,
  };
}

/**
 * PutObject: the body is received into a temporary file and moved among the bodies, then one index
 * transaction checks the write condition and switches the key to it; the replaced body goes last.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html
 */
export async function putObject(ctx: RequestContext, bucket: string, key: string): Promise<Reply> {
  const { index, store } = ctx.emulator;
  index.requireBucket(bucket);
  const condition = writeCondition(ctx.req.headers);
  const headers = storedHeaders(ctx.req.headers);
  const body = await receiveRequestBody(ctx);
  const object = newVersion(key, body, headers);
  const replaced = await commit(ctx, body, () => index.putObject(bucket, object, condition));
  await store.remove(replaced === undefined ? [] : [replaced]);
  ctx.emulator.created({ bucket, key, size: object.size, eTag: object.etag, eventName: 'ObjectCreated:Put' });
  return { status: 200, headers: { etag: `"${object.etag}"` } };
}

/**
 * GetObject and HeadObject: conditional requests, one byte range, `response-*` overrides.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
 */
export async function getObject(ctx: RequestContext, bucket: string, key: string): Promise<Reply> {
  const { index, store } = ctx.emulator;
  index.requireBucket(bucket);
  const object = index.getObject(bucket, key);
  if (!object) throw new S3Error('NoSuchKey', undefined, { Key: key });
  const headers = objectHeaders(object, ctx.target.query);
  switch (evaluateRead(readConditions(ctx.req.headers, ''), object)) {
    case 'failed':
      throw new S3Error('PreconditionFailed', undefined, { Condition: 'If-Match / If-Unmodified-Since' });
    case 'not-modified':
      return { status: 304, headers: { etag: headers.etag, 'last-modified': headers['last-modified'] } };
  }
  const range = parseRange(ctx.req.headers.range, object.size);
  if (range === 'unsatisfiable') {
    throw new S3Error('InvalidRange', undefined, { RangeRequested: ctx.req.headers.range ?? '' });
  }
  headers['content-length'] = range ? range.end - range.start + 1 : object.size;
  if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${object.size}`;
  const status = range ? 206 : 200;
  if (ctx.req.method === 'HEAD') return { status, headers };
  // Opened in the tick of the lookup above: see BodyStore.openSync.
  return { status, headers, body: store.read(store.openSync(object.body), range) };
}

/** DeleteObject: 204 whether or not the key existed, as S3 answers. */
export async function deleteObject(ctx: RequestContext, bucket: string, key: string): Promise<Reply> {
  const { index, store } = ctx.emulator;
  index.requireBucket(bucket);
  await store.remove(index.deleteObjects(bucket, [key]));
  return { status: 204 };
}

/**
 * CopyObject, metadata directive COPY (the default) or REPLACE. The copy is a new body, streamed from
 * the source's; its ETag is the MD5 of the data, as for any object S3 creates by copying.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html
 */
export async function copyObject(ctx: RequestContext, bucket: string, key: string): Promise<Reply> {
  const { index, store } = ctx.emulator;
  index.requireBucket(bucket);
  const condition = writeCondition(ctx.req.headers);
  const directive = headerValue(ctx.req.headers, 'x-amz-metadata-directive') ?? 'COPY';
  if (directive !== 'COPY' && directive !== 'REPLACE') {
    throw new S3Error('InvalidArgument', 'Unknown metadata directive.', {
      ArgumentName: 'x-amz-metadata-directive',
    });
  }
  const name = copySourceName(ctx);
  if (name.bucket === bucket && name.key === key && directive === 'COPY') {
    throw new S3Error(
      'InvalidRequest',
      "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    );
  }
  const source = openCopySource(ctx, name);
  const body = await receiveStream(ctx, store.read(source.fd), ['md5']);
  const headers = directive === 'REPLACE' ? storedHeaders(ctx.req.headers) : source.object.headers;
  const object = newVersion(key, body, headers);
  const replaced = await commit(ctx, body, () => index.putObject(bucket, object, condition));
  await store.remove(replaced === undefined ? [] : [replaced]);
  ctx.emulator.created({
    bucket,
    key,
    size: object.size,
    eTag: object.etag,
    eventName: 'ObjectCreated:Copy',
  });
  return xmlReply(
    s3Document(
      'CopyObjectResult',
      element('LastModified', new Date(object.modifiedMs).toISOString()),
      element('ETag', `"${object.etag}"`),
    ),
  );
}
