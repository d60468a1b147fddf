import { S3Error } from './errors.js';
import type { ListPage, ListQuery } from './object-index.js';
import { integerParam, type KeyEncoding, keyEncoding } from './query-params.js';
import { type Reply, type RequestContext, xmlReply } from './request-context.js';
import { element, s3Document, type Xml } from './xml.js';

/** S3 returns at most 1,000 keys per page, whatever max-keys asks for. */
const MAX_KEYS = 1000;

interface Common extends KeyEncoding {
  prefix: string;
  delimiter: string | undefined;
  maxKeys: number;
  fetchOwner: boolean;
}

function common(query: ReadonlyMap<string, string>): Common {
  return {
    ...keyEncoding(query),
    prefix: query.get('prefix') ?? '',
    // An empty delimiter is no delimiter.
    delimiter: query.get('delimiter') || undefined,
    maxKeys: integerParam(query, 'max-keys', MAX_KEYS, MAX_KEYS),
    fetchOwner: query.get('fetch-owner') === 'true',
  };
}

function listQuery(c: Common, startAfter: string | undefined): ListQuery {
  return { prefix: c.prefix, delimiter: c.delimiter, maxKeys: c.maxKeys, startAfter };
}

/** The key or common prefix a continuation token stands for: tokens are its base64url. */
function fromToken(token: string): string {
  const after = Buffer.from(token, 'base64url').toString('utf8');
  if (token === '' || Buffer.from(after).toString('base64url') !== token) {
    throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect', {
      ArgumentName: 'continuation-token',
    });
  }
  return after;
}

/** Contents and CommonPrefixes of a page, shared by both versions of ListObjects. */
function entries(ctx: RequestContext, c: Common, page: ListPage, withOwner: boolean): Xml[] {
  const { owner } = ctx.emulator;
  const ownerXml = withOwner
    ? element('Owner', element('ID', owner.id), element('DisplayName', owner.displayName))
    : undefined;
  return [
    ...page.objects.map((o) =>
      element(
        'Contents',
        element('Key', c.encode(o.key)),
        element('LastModified', new Date(o.modifiedMs).toISOString()),
        element('ETag', `"${o.etag}"`),
        element('Size', o.size),
        ownerXml,
        element('StorageClass', 'STANDARD'),
      ),
    ),
    ...page.prefixes.map((p) => element('CommonPrefixes', element('Prefix', c.encode(p)))),
  ];
}

function head(bucket: string, c: Common): Xml[] {
  return [
    element('Name', bucket),
    element('Prefix', c.encode(c.prefix)),
    c.delimiter !== undefined && element('Delimiter', c.encode(c.delimiter)),
    element('MaxKeys', c.maxKeys),
    c.encodingType !== undefined && element('EncodingType', c.encodingType),
  ].filter((x): x is Xml => x !== false);
}

/**
 * ListObjectsV2. The continuation token is opaque to clients: the base64url of the last key or
 * common prefix returned, after which the next page starts.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
 */
export async function listObjectsV2(ctx: RequestContext, bucket: string): Promise<Reply> {
  const { query } = ctx.target;
  const c = common(query);
  const token = query.get('continuation-token');
  const startAfter = query.get('start-after');
  ctx.emulator.index.requireBucket(bucket);
  const page = ctx.emulator.index.list(
    bucket,
    listQuery(c, token === undefined ? startAfter : fromToken(token)),
  );
  const next =
    page.truncated && page.last !== undefined ? Buffer.from(page.last).toString('base64url') : undefined;
  return xmlReply(
    s3Document(
      'ListBucketResult',
      head(bucket, c),
      element('KeyCount', page.objects.length + page.prefixes.length),
      element('IsTruncated', String(page.truncated)),
      token !== undefined && element('ContinuationToken', token),
      next !== undefined && element('NextContinuationToken', next),
      startAfter !== undefined && element('StartAfter', c.encode(startAfter)),
      entries(ctx, c, page, c.fetchOwner),
    ),
  );
}

/**
 * ListObjects (version 1): `marker` instead of a token; NextMarker only with a delimiter, as in S3
 * (without one, clients continue from the last key).
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjects.html
 */
export async function listObjectsV1(ctx: RequestContext, bucket: string): Promise<Reply> {
  const { query } = ctx.target;
  const c = common(query);
  const marker = query.get('marker') ?? '';
  ctx.emulator.index.requireBucket(bucket);
  const page = ctx.emulator.index.list(bucket, listQuery(c, marker || undefined));
  const nextMarker = page.truncated && c.delimiter !== undefined ? page.last : undefined;
  return xmlReply(
    s3Document(
      'ListBucketResult',
      head(bucket, c),
      element('Marker', c.encode(marker)),
      nextMarker !== undefined && element('NextMarker', c.encode(nextMarker)),
      element('IsTruncated', String(page.truncated)),
      entries(ctx, c, page, true),
    ),
  );
}
