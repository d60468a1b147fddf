/** An inclusive byte range of a body. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Interprets a `Range` header against a body of `size` bytes: a range, `'unsatisfiable'` (416), or
 * undefined to send the whole body. S3 serves one range of the forms `bytes=a-b`, `bytes=a-` and
 * `bytes=-n`; anything else (several ranges, another unit, a malformed value) is ignored, as RFC 9110
 * lets a server do. https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
 */
export function parseRange(
  header: string | undefined,
  size: number,
): ByteRange | 'unsatisfiable' | undefined {
  const m = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? Number.POSITIVE_INFINITY : Number(m[2]);
  if (last < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(last, size - 1) };
}
