import type { IncomingHttpHeaders } from 'node:http';
import { S3Error } from './errors.js';
import { headerValue } from './http-headers.js';

/** The version of an object that conditions are evaluated against. */
export interface Version {
  etag: string;
  modifiedMs: number;
}

/** The four conditional-request headers, under whatever names an operation reads them from. */
export interface ReadConditions {
  ifMatch?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  ifUnmodifiedSince?: string;
}

/** GetObject's and HeadObject's conditions, from `If-*`; CopyObject's, from `x-amz-copy-source-if-*`. */
export function readConditions(
  headers: IncomingHttpHeaders,
  prefix: '' | 'x-amz-copy-source-',
): ReadConditions {
  return {
    ifMatch: headerValue(headers, `${prefix}if-match`),
    ifNoneMatch: headerValue(headers, `${prefix}if-none-match`),
    ifModifiedSince: headerValue(headers, `${prefix}if-modified-since`),
    ifUnmodifiedSince: headerValue(headers, `${prefix}if-unmodified-since`),
  };
}

/** A list of entity tags (quoted or not, weak or not) contains `etag`, or is `*`. */
function matches(list: string, etag: string): boolean {
  return list
    .split(',')
    .map((tag) =>
      tag
        .trim()
        .replace(/^W\//, '')
        .replace(/^"(.*)"$/, '$1'),
    )
    .some((tag) => tag === '*' || tag === etag);
}

/** Last-Modified is sent in whole seconds, so dates compare in whole seconds. */
function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}

/**
 * Evaluates read conditions in RFC 9110's order, which gives S3's documented combinations: If-Match
 * true makes If-Unmodified-Since irrelevant, If-None-Match false makes If-Modified-Since irrelevant.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html#API_GetObject_RequestSyntax
 */
export function evaluateRead(c: ReadConditions, v: Version): 'proceed' | 'not-modified' | 'failed' {
  if (c.ifMatch !== undefined) {
    if (!matches(c.ifMatch, v.etag)) return 'failed';
  } else if (c.ifUnmodifiedSince !== undefined) {
    const since = Date.parse(c.ifUnmodifiedSince);
    if (!Number.isNaN(since) && seconds(v.modifiedMs) > seconds(since)) return 'failed';
  }
  if (c.ifNoneMatch !== undefined) {
    if (matches(c.ifNoneMatch, v.etag)) return 'not-modified';
  } else if (c.ifModifiedSince !== undefined) {
    const since = Date.parse(c.ifModifiedSince);
    if (!Number.isNaN(since) && seconds(v.modifiedMs) <= seconds(since)) return 'not-modified';
  }
  return 'proceed';
}

/** The condition of a conditional write. */
export interface WriteCondition {
  ifMatch?: string;
  ifNoneMatch?: '*';
}

/**
 * Reads a write's `If-Match` / `If-None-Match` (PutObject, CopyObject, CompleteMultipartUpload).
 * S3 accepts only `*` in If-None-Match on a write.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
 */
export function writeCondition(headers: IncomingHttpHeaders): WriteCondition {
  const ifNoneMatch = headerValue(headers, 'if-none-match')?.trim();
  if (ifNoneMatch !== undefined && ifNoneMatch !== '*') {
    throw new S3Error('NotImplemented', 'If-None-Match on a write supports only "*".', {
      Header: 'If-None-Match',
    });
  }
  return { ifMatch: headerValue(headers, 'if-match'), ifNoneMatch };
}

/**
 * Checks a write's condition against the current version of the key (undefined: no such key). Called
 * inside the transaction that commits the write, which makes check and switch one atomic step.
 * As S3: a failed condition is 412 PreconditionFailed, If-Match on a missing key 404 NoSuchKey.
 */
export function checkWrite(c: WriteCondition, current: Version | undefined, key: string): void {
  if (c.ifMatch !== undefined) {
    if (current === undefined) throw new S3Error('NoSuchKey', undefined, { Key: key });
    if (!matches(c.ifMatch, current.etag)) {
      throw new S3Error('PreconditionFailed', undefined, { Condition: 'If-Match' });
    }
  }
  if (c.ifNoneMatch !== undefined && current !== undefined) {
    throw new S3Error('PreconditionFailed', undefined, { Condition: 'If-None-Match' });
  }
}
