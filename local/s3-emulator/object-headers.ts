import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { StoredObject } from './object-index.js';

/** The representation headers S3 keeps with an object and returns on GET and HEAD. */
const KEPT = [
  'cache-control',
  'content-disposition',
  'content-encoding',
  'content-language',
  'content-type',
  'expires',
];

/** What S3 answers for an object stored without a Content-Type. */
const DEFAULT_CONTENT_TYPE = 'binary/octet-stream';

/**
 * The headers of a PutObject / CreateMultipartUpload / CopyObject (REPLACE) request that are stored
 * with the object: the representation headers and the user metadata (`x-amz-meta-*`). The
 * `aws-chunked` content coding describes the upload, not the object, so S3 drops it.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html
 */
export function storedHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || !(KEPT.includes(name) || name.startsWith('x-amz-meta-'))) continue;
    out[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const encoding = out['content-encoding']
    ?.split(',')
    .map((coding) => coding.trim())
    .filter((coding) => coding !== '' && coding !== 'aws-chunked')
    .join(',');
  if (encoding) out['content-encoding'] = encoding;
  else delete out['content-encoding'];
  return out;
}

/**
 * The headers of a GET or HEAD of `o`; `response-*` query parameters override the stored ones, as S3
 * lets a signed request do. https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
 */
export function objectHeaders(o: StoredObject, query: ReadonlyMap<string, string>): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {
    'content-type': DEFAULT_CONTENT_TYPE,
    ...o.headers,
    etag: `"${o.etag}"`,
    'last-modified': new Date(o.modifiedMs).toUTCString(),
    'accept-ranges': 'bytes',
  };
  for (const name of KEPT) {
    const override = query.get(`response-${name}`);
    if (override !== undefined) headers[name] = override;
  }
  return headers;
}
