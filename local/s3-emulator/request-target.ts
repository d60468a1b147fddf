import { S3Error } from './errors.js';

/** S3's limit on a key: 1,024 bytes of UTF-8. */
const MAX_KEY_BYTES = 1024;

/** What a request addresses: the service, a bucket, or an object; and its query parameters. */
export interface RequestTarget {
  /** Path and query as sent, still percent-encoded (what SigV4 signs). */
  rawPath: string;
  rawQuery: string;
  bucket: string | undefined;
  /** The key exactly as the client named it: decoded, never normalised (`a/./b` is not `a/b`). */
  key: string | undefined;
  /** Decoded query parameters; the first of a repeated name wins. */
  query: ReadonlyMap<string, string>;
}

function decode(component: string): string {
  try {
    return decodeURIComponent(component);
  } catch {
    throw new S3Error('InvalidURI');
  }
}

function parseQuery(rawQuery: string): Map<string, string> {
  const query = new Map<string, string>();
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decode(eq === -1 ? part : part.slice(0, eq));
    if (!query.has(name)) query.set(name, decode(eq === -1 ? '' : part.slice(eq + 1)));
  }
  return query;
}

/**
 * Reads bucket, key and query from a request. Path style (`/bucket/key`) is the norm; a Host of
 * `<bucket>.localhost[:port]` (virtual-hosted style, which resolves to loopback) names the bucket too.
 * The key is the rest of the path after one `/`, percent-decoded once; `+` is a literal plus.
 */
export function parseTarget(url: string, host: string | undefined): RequestTarget {
  const q = url.indexOf('?');
  const rawPath = q === -1 ? url : url.slice(0, q);
  const rawQuery = q === -1 ? '' : url.slice(q + 1);
  if (!rawPath.startsWith('/')) throw new S3Error('InvalidURI');
  const virtualBucket = /^([a-z0-9][a-z0-9.-]*)\.localhost(?::\d+)?$/i.exec(host ?? '')?.[1];
  let bucket: string | undefined;
  let rest: string;
  if (virtualBucket !== undefined) {
    bucket = virtualBucket.toLowerCase();
    rest = rawPath.slice(1);
  } else {
    const slash = rawPath.indexOf('/', 1);
    bucket = decode(slash === -1 ? rawPath.slice(1) : rawPath.slice(1, slash)) || undefined;
    rest = slash === -1 ? '' : rawPath.slice(slash + 1);
    if (bucket === undefined && rest !== '') throw new S3Error('InvalidURI');
  }
  const key = rest === '' ? undefined : decode(rest);
  if (key !== undefined && Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    throw new S3Error('KeyTooLongError', undefined, {
      Size: String(Buffer.byteLength(key, 'utf8')),
      MaxSizeAllowed: String(MAX_KEY_BYTES),
    });
  }
  return { rawPath, rawQuery, bucket, key, query: parseQuery(rawQuery) };
}
