import { createHash, randomBytes } from 'node:crypto';
import { S3Error } from './errors.js';
import { headerValue } from './http-headers.js';
import { storedHeaders } from './object-headers.js';
import type { Part, StoredObject, Upload } from './object-index.js';
import {
  commit,
  copySourceName,
  type NewBody,
  openCopySource,
  receiveRequestBody,
  receiveStream,
} from './object-writes.js';
import { writeCondition } from './preconditions.js';
import { integerParam, keyEncoding } from './query-params.js';
import { type Reply, type RequestContext, xmlReply } from './request-context.js';
import { childrenNamed, childText, element, s3Document, type Xml, type XmlElement } from './xml.js';
import { readXmlBody } from './xml-body.js';

/** Every part but the last must be at least 5 MiB. https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html */
const MIN_PART_SIZE = 5 * 1024 * 1024;
const MAX_PART_NUMBER = 10_000;
const MAX_PAGE = 1000;

/** Upload ids sort by initiation time (ListMultipartUploads orders a key's uploads so), then random. */
function newUploadId(): string {
  return `${Date.now().toString(16).padStart(12, '0')}${randomBytes(16).toString('hex')}`;
}

function uploadIdParam(ctx: RequestContext): string {
  return ctx.target.query.get('uploadId') ?? '';
}

function partNumberParam(ctx: RequestContext): number {
  const number = integerParam(ctx.target.query, 'partNumber', 0);
  if (number < 1 || number > MAX_PART_NUMBER) {
    throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive', {
      ArgumentName: 'partNumber',
    });
  }
  return number;
}

function unquote(etag: string): string {
  return etag.trim().replace(/^"(.*)"$/, '$1');
}

function ownerXml(ctx: RequestContext, name: 'Owner' | 'Initiator'): Xml {
  const { owner } = ctx.emulator;
  return element(name, element('ID', owner.id), element('DisplayName', owner.displayName));
}

/** CreateMultipartUpload: the object's headers are taken now, as S3 does. */
export async function createMultipartUpload(
  ctx: RequestContext,
  bucket: string,
  key: string,
): Promise<Reply> {
  const id = newUploadId();
  ctx.emulator.index.createUpload({
    id,
    bucket,
    key,
    headers: storedHeaders(ctx.req.headers),
    initiatedMs: Date.now(),
  });
  return xmlReply(
    s3Document(
      'InitiateMultipartUploadResult',
      element('Bucket', bucket),
      element('Key', key),
      element('UploadId', id),
    ),
  );
}

/** Stores a received part; the transaction fails with NoSuchUpload if the upload ended meanwhile. */
async function storePart(ctx: RequestContext, upload: Upload, number: number, body: NewBody): Promise<Part> {
  const { index, store } = ctx.emulator;
  const part: Part = {
    number,
    body: body.name,
    size: body.size,
    etag: body.digests.digest('md5').toString('hex'),
    modifiedMs: Date.now(),
  };
  const replaced = await commit(ctx, body, () => index.putPart(upload, part));
  await store.remove(replaced === undefined ? [] : [replaced]);
  return part;
}

/** UploadPart: a part replaces an earlier one with the same number. */
export async function uploadPart(ctx: RequestContext, bucket: string, key: string): Promise<Reply> {
  const number = partNumberParam(ctx);
  const upload = ctx.emulator.index.requireUpload(uploadIdParam(ctx), bucket, key);
  const part = await storePart(ctx, upload, number, await receiveRequestBody(ctx));
  return { status: 200, headers: { etag: `"${part.etag}"` } };
}

/**
 * UploadPartCopy: a part copied from an object, or from `x-amz-copy-source-range: bytes=first-last`.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPartCopy.html
 */
export async function uploadPartCopy(ctx: RequestContext, bucket: string, key: string): Promise<Reply> {
  const { index, store } = ctx.emulator;
  const number = partNumberParam(ctx);
  const upload = index.requireUpload(uploadIdParam(ctx), bucket, key);
  const range = headerValue(ctx.req.headers, 'x-amz-copy-source-range');
  const source = openCopySource(ctx, copySourceName(ctx), range);
  const body = await receiveStream(ctx, store.read(source.fd, source.range), ['md5']);
  const part = await storePart(ctx, upload, number, body);
  return xmlReply(
    s3Document(
      'CopyPartResult',
      element('LastModified', new Date(part.modifiedMs).toISOString()),
      element('ETag', `"${part.etag}"`),
    ),
  );
}

/** The parts a CompleteMultipartUpload request names, checked for form and order. */
function requestedParts(elements: XmlElement[]): { number: number; etag: string }[] {
  const parts = elements.map((p) => ({
    number: Number(childText(p, 'PartNumber')?.trim() || Number.NaN),
    etag: unquote(childText(p, 'ETag') ?? ''),
  }));
  if (parts.length === 0 || parts.some((p) => !Number.isInteger(p.number) || p.etag === '')) {
    throw new S3Error('MalformedXML', 'Each <Part> needs a <PartNumber> and an <ETag>.');
  }
  if (parts.some((p, i) => i > 0 && p.number <= parts[i - 1]!.number)) throw new S3Error('InvalidPartOrder');
  return parts;
}

/**
 * CompleteMultipartUpload: the named parts are concatenated into one new body, then one transaction
 * checks the write condition (If-None-Match / If-Match, as for PutObject) and makes it the object.
 * The ETag is S3's: the MD5 of the parts' binary MD5s, then `-<number of parts>`.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html
 */
export async function completeMultipartUpload(
  ctx: RequestContext,
  bucket: string,
  key: string,
): Promise<Reply> {
  const { index, store } = ctx.emulator;
  const condition = writeCondition(ctx.req.headers);
  const requested = requestedParts(childrenNamed(await readXmlBody(ctx, 'CompleteMultipartUpload'), 'Part'));
  // From the lookups to the opening of the part bodies, one tick: see BodyStore.openSync.
  const upload = index.requireUpload(uploadIdParam(ctx), bucket, key);
  const uploaded = new Map(index.parts(upload.id).map((p) => [p.number, p]));
  const parts = requested.map((r, i) => {
    const part = uploaded.get(r.number);
    if (!part || part.etag !== r.etag) {
      throw new S3Error('InvalidPart', undefined, { PartNumber: String(r.number), ETag: r.etag });
    }
    if (i < requested.length - 1 && part.size < MIN_PART_SIZE) {
      throw new S3Error('EntityTooSmall', undefined, {
        PartNumber: String(r.number),
        ProposedSize: String(part.size),
        MinSizeAllowed: String(MIN_PART_SIZE),
      });
    }
    return part;
  });
  const body = await receiveStream(ctx, store.concatenate(parts.map((p) => p.body)), []);
  const md5s = Buffer.concat(parts.map((p) => Buffer.from(p.etag, 'hex')));
  const object: StoredObject = {
    key,
    body: body.name,
    size: body.size,
    etag: `${createHash('md5').update(md5s).digest('hex')}-${parts.length}`,
    modifiedMs: Date.now(),
    headers: upload.headers,
  };
  await store.remove(await commit(ctx, body, () => index.completeUpload(upload, object, condition)));
  ctx.emulator.created({
    bucket,
    key,
    size: object.size,
    eTag: object.etag,
    eventName: 'ObjectCreated:CompleteMultipartUpload',
  });
  return xmlReply(
    s3Document(
      'CompleteMultipartUploadResult',
      element(
        'Location',
        `http://${ctx.req.headers.host}/${bucket}/${encodeURIComponent(key).replace(/%2F/g, '/')}`,
      ),
      element('Bucket', bucket),
      element('Key', key),
      element('ETag', `"${object.etag}"`),
    ),
  );
}

/** AbortMultipartUpload: the upload and its parts are gone (404 NoSuchUpload if there was none). */
export async function abortMultipartUpload(ctx: RequestContext, bucket: string, key: string): Promise<Reply> {
  const { index, store } = ctx.emulator;
  await store.remove(index.abortUpload(uploadIdParam(ctx), bucket, key));
  return { status: 204 };
}

/** ListParts, paged by part-number-marker. https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListParts.html */
export async function listParts(ctx: RequestContext, bucket: string, key: string): Promise<Reply> {
  const { index } = ctx.emulator;
  const { query } = ctx.target;
  const upload = index.requireUpload(uploadIdParam(ctx), bucket, key);
  const maxParts = integerParam(query, 'max-parts', MAX_PAGE, MAX_PAGE);
  const marker = integerParam(query, 'part-number-marker', 0);
  const parts = index.parts(upload.id, marker, maxParts + 1);
  const page = parts.slice(0, maxParts);
  const truncated = parts.length > maxParts;
  return xmlReply(
    s3Document(
      'ListPartsResult',
      element('Bucket', bucket),
      element('Key', key),
      element('UploadId', upload.id),
      ownerXml(ctx, 'Initiator'),
      ownerXml(ctx, 'Owner'),
      element('StorageClass', 'STANDARD'),
      element('PartNumberMarker', marker),
      truncated && element('NextPartNumberMarker', page.at(-1)?.number),
      element('MaxParts', maxParts),
      element('IsTruncated', String(truncated)),
      page.map((p) =>
        element(
          'Part',
          element('PartNumber', p.number),
          element('LastModified', new Date(p.modifiedMs).toISOString()),
          element('ETag', `"${p.etag}"`),
          element('Size', p.size),
        ),
      ),
    ),
  );
}

/**
 * ListMultipartUploads, by prefix and key-marker / upload-id-marker. Grouping by delimiter is not
 * implemented (no client of this project asks for it).
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListMultipartUploads.html
 */
export async function listMultipartUploads(ctx: RequestContext, bucket: string): Promise<Reply> {
  const { index } = ctx.emulator;
  const { query } = ctx.target;
  if (query.get('delimiter')) {
    throw new S3Error(
      'NotImplemented',
      'ListMultipartUploads with a delimiter is not supported by the local S3 emulator.',
    );
  }
  const { encodingType, encode } = keyEncoding(query);
  const prefix = query.get('prefix') ?? '';
  const keyMarker = query.get('key-marker') ?? '';
  // S3 ignores upload-id-marker without key-marker.
  const idMarker = keyMarker ? query.get('upload-id-marker') : undefined;
  const maxUploads = integerParam(query, 'max-uploads', MAX_PAGE, MAX_PAGE);
  index.requireBucket(bucket);
  const uploads = index.uploads(bucket, prefix, keyMarker, idMarker, maxUploads + 1);
  const page = uploads.slice(0, maxUploads);
  const truncated = uploads.length > maxUploads;
  const last = page.at(-1);
  return xmlReply(
    s3Document(
      'ListMultipartUploadsResult',
      element('Bucket', bucket),
      element('KeyMarker', encode(keyMarker)),
      element('UploadIdMarker', idMarker ?? ''),
      truncated &&
        last && [element('NextKeyMarker', encode(last.key)), element('NextUploadIdMarker', last.id)],
      element('Prefix', encode(prefix)),
      encodingType !== undefined && element('EncodingType', encodingType),
      element('MaxUploads', maxUploads),
      element('IsTruncated', String(truncated)),
      page.map((u) =>
        element(
          'Upload',
          element('Key', encode(u.key)),
          element('UploadId', u.id),
          ownerXml(ctx, 'Initiator'),
          ownerXml(ctx, 'Owner'),
          element('StorageClass', 'STANDARD'),
          element('Initiated', new Date(u.initiatedMs).toISOString()),
        ),
      ),
    ),
  );
}
