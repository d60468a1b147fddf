import { S3Error } from './errors.js';

/**
 * A whole-number query parameter (max-keys, max-parts, part-number-marker, …): `fallback` when absent,
 * capped at `max` (S3 caps page sizes rather than refusing them), InvalidArgument when not a number.
 */
export function integerParam(
  query: ReadonlyMap<string, string>,
  name: string,
  fallback: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const value = query.get(name);
  if (value === undefined) return fallback;
  if (!/^\d{1,15}$/.test(value)) {
    throw new S3Error('InvalidArgument', `Provided ${name} not an integer or within integer range`, {
      ArgumentName: name,
      ArgumentValue: value,
    });
  }
  return Math.min(Number(value), max);
}

/** How keys and prefixes are written in a listing. */
export interface KeyEncoding {
  encodingType: 'url' | undefined;
  encode: (text: string) => string;
}

/**
 * `encoding-type=url` asks for keys and prefixes URL-encoded in a listing (so that any key survives
 * XML); the AWS CLI always asks. S3's encoding keeps `/`; clients decode with unquote_plus or
 * QueryUnescape, so `+` must be %2B, which encodeURIComponent does.
 */
export function keyEncoding(query: ReadonlyMap<string, string>): KeyEncoding {
  const type = query.get('encoding-type');
  if (type === undefined) return { encodingType: undefined, encode: (text) => text };
  if (type !== 'url') {
    throw new S3Error('InvalidArgument', 'Invalid Encoding Method specified in Request', {
      ArgumentName: 'encoding-type',
      ArgumentValue: type,
    });
  }
  return { encodingType: type, encode: (text) => encodeURIComponent(text).replace(/%2F/g, '/') };
}
