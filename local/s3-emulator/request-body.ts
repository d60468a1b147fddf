import type { IncomingMessage } from 'node:http';
import type { Readable, Transform } from 'node:stream';
import { AwsChunkedDecoder } from './aws-chunked.js';
import type { DigestAlgorithm, DigestStream } from './digests.js';
import { S3Error } from './errors.js';
import { headerValue } from './http-headers.js';

/** S3's additional checksums that Node can compute; CRC32C and CRC64NVME are accepted unverified. */
const CHECKSUMS = { crc32: 'CRC32', sha1: 'SHA1', sha256: 'SHA256' } as const;
type Checksum = keyof typeof CHECKSUMS;

/**
 * How to read a request body and what it must match once read: the stages that decode it from the
 * wire, the digests to compute over the decoded bytes, and the check to run on them at the end.
 */
export interface RequestBody {
  /** `source` followed by the decoding stages, ready for `pipeline`. */
  streams: [Readable, ...Transform[]];
  digests: DigestAlgorithm[];
  /** Throws the S3Error S3 would answer if what was received is not what the headers announced. */
  verify(received: DigestStream): void;
}

/**
 * Interprets the body headers of a request: aws-chunked framing (`x-amz-content-sha256:
 * STREAMING-…`, with `x-amz-decoded-content-length` the decoded size), `Content-MD5`, a hex
 * `x-amz-content-sha256`, and S3's `x-amz-checksum-*` in a header or announced by `x-amz-trailer`.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html
 */
export function requestBody(req: IncomingMessage): RequestBody {
  const header = (name: string) => headerValue(req.headers, name);
  const contentSha256 = header('x-amz-content-sha256');
  const chunked = contentSha256?.startsWith('STREAMING-') === true;
  const decoder = chunked ? new AwsChunkedDecoder() : undefined;
  const digests = new Set<DigestAlgorithm>(['md5']);

  const decodedLengthHeader = header('x-amz-decoded-content-length');
  if (decodedLengthHeader !== undefined && !/^\d+$/.test(decodedLengthHeader)) {
    throw new S3Error('InvalidArgument', 'x-amz-decoded-content-length must be a number of bytes.');
  }
  const decodedLength =
    chunked && decodedLengthHeader !== undefined ? Number(decodedLengthHeader) : undefined;

  const md5Header = header('content-md5');
  const md5 = md5Header === undefined ? undefined : Buffer.from(md5Header, 'base64');
  if (md5 !== undefined && (md5.length !== 16 || md5.toString('base64') !== md5Header)) {
    throw new S3Error('InvalidDigest');
  }

  const sha256 =
    contentSha256 !== undefined && /^[0-9a-f]{64}$/.test(contentSha256) ? contentSha256 : undefined;
  if (sha256 !== undefined) digests.add('sha256');

  const trailer = header('x-amz-trailer')?.trim().toLowerCase();
  let checksum: { algorithm: Checksum; header: string } | undefined;
  for (const algorithm of Object.keys(CHECKSUMS) as Checksum[]) {
    const name = `x-amz-checksum-${algorithm}`;
    if (header(name) !== undefined || trailer === name) checksum = { algorithm, header: name };
  }
  if (checksum) digests.add(checksum.algorithm);

  return {
    streams: decoder ? [req, decoder] : [req],
    digests: [...digests],
    verify(received) {
      if (decodedLength !== undefined && received.size !== decodedLength) {
        throw new S3Error(
          'IncompleteBody',
          `x-amz-decoded-content-length is ${decodedLength}, the body decoded to ${received.size} bytes.`,
        );
      }
      if (md5 !== undefined && !md5.equals(received.digest('md5'))) throw new S3Error('BadDigest');
      if (sha256 !== undefined && received.digest('sha256').toString('hex') !== sha256) {
        throw new S3Error('XAmzContentSHA256Mismatch');
      }
      if (checksum) {
        const expected = header(checksum.header) ?? decoder?.trailers.get(checksum.header);
        if (expected === undefined) {
          throw new S3Error('InvalidRequest', `The announced trailer ${checksum.header} was not sent.`);
        }
        if (received.digest(checksum.algorithm).toString('base64') !== expected) {
          throw new S3Error(
            'BadDigest',
            `The ${CHECKSUMS[checksum.algorithm]} you specified did not match the calculated checksum.`,
          );
        }
      }
    },
  };
}
