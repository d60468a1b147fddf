import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/**
 * Verification of AWS Signature Version 4, for header-signed requests and presigned URLs.
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
 * Shared by the local emulators and the runtime's Lambda Invoke API: S3 passes `undefined` as the payload hash (S3 signs the value of
 * `x-amz-content-sha256`), a JSON or Query protocol service passes the SHA-256 of the body it read.
 */

/** A request as it came off the wire: path and query still percent-encoded, exactly as sent. */
export interface SignedRequest {
  method: string;
  rawPath: string;
  /** Without the leading `?`; empty when there is none. */
  rawQuery: string;
  headers: IncomingHttpHeaders;
}

/** The one key pair a local emulator accepts. */
export interface SigV4Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** The failures, named with S3's error codes (a non-S3 caller maps them onto its own). */
export type SigV4ErrorCode =
  | 'AccessDenied'
  | 'AuthorizationHeaderMalformed'
  | 'AuthorizationQueryParametersError'
  | 'InvalidAccessKeyId'
  | 'InvalidRequest'
  | 'RequestTimeTooSkewed'
  | 'SignatureDoesNotMatch';

/** Verified (with the access key), or the error S3 would answer, with its HTTP status. */
export type SigV4Result =
  | { ok: true; accessKeyId: string }
  | {
      ok: false;
      status: number;
      code: SigV4ErrorCode;
      message: string;
      /** On SignatureDoesNotMatch, what the server signed: S3 returns it too, to debug clients with. */
      canonicalRequest?: string;
      stringToSign?: string;
    };

const ALGORITHM = 'AWS4-HMAC-SHA256';
/** S3 refuses a request whose x-amz-date is more than 15 minutes off the server's clock. */
const MAX_SKEW_MS = 15 * 60 * 1000;
/** A presigned URL lives at most seven days. */
const MAX_EXPIRES_SECONDS = 604_800;

type Failure = Extract<SigV4Result, { ok: false }>;

function failure(status: number, code: SigV4ErrorCode, message: string): Failure {
  return { ok: false, status, code, message };
}

/** What the two ways of signing (header, query) carry. */
interface Presented {
  credential: string;
  signedHeaders: string[];
  signature: string;
  amzDate: string;
  /** Presigned URLs only. */
  expiresSeconds?: number;
  malformed: SigV4ErrorCode;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

function decodeComponent(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

/** The query as decoded name/value pairs, in order. `+` is a literal plus, as in RFC 3986. */
function queryPairs(rawQuery: string): [string, string][] | undefined {
  const pairs: [string, string][] = [];
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decodeComponent(eq === -1 ? part : part.slice(0, eq));
    const value = decodeComponent(eq === -1 ? '' : part.slice(eq + 1));
    if (name === undefined || value === undefined) return undefined;
    pairs.push([name, value]);
  }
  return pairs;
}

/** SigV4's UriEncode: everything but the RFC 3986 unreserved characters, as %XX in upper case. */
function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function fromAuthorizationHeader(value: string, headers: IncomingHttpHeaders): Presented | Failure {
  const fields = new Map<string, string>();
  for (const part of value.slice(ALGORITHM.length).split(',')) {
    const eq = part.indexOf('=');
    if (eq !== -1) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (!credential || !signedHeaders || !signature) {
    return failure(
      400,
      'AuthorizationHeaderMalformed',
      'The authorization header is malformed; it must carry Credential, SignedHeaders and Signature.',
    );
  }
  const amzDate = header(headers, 'x-amz-date');
  if (amzDate === undefined) {
    return failure(403, 'AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
  }
  return {
    credential,
    signedHeaders: signedHeaders.split(';'),
    signature,
    amzDate,
    malformed: 'AuthorizationHeaderMalformed',
  };
}

function fromQuery(params: Map<string, string>): Presented | Failure {
  const malformed = (message: string) => failure(400, 'AuthorizationQueryParametersError', message);
  if (params.get('X-Amz-Algorithm') !== ALGORITHM) {
    return malformed(`X-Amz-Algorithm only supports "${ALGORITHM}"`);
  }
  const credential = params.get('X-Amz-Credential');
  const signedHeaders = params.get('X-Amz-SignedHeaders');
  const signature = params.get('X-Amz-Signature');
  const amzDate = params.get('X-Amz-Date');
  const expires = params.get('X-Amz-Expires');
  if (!credential || !signedHeaders || !signature || !amzDate || !expires) {
    return malformed(
      'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.',
    );
  }
  const expiresSeconds = /^\d{1,7}$/.test(expires) ? Number(expires) : Number.NaN;
  if (!(expiresSeconds >= 1 && expiresSeconds <= MAX_EXPIRES_SECONDS)) {
    return malformed('X-Amz-Expires must be a number of seconds between 1 and 604800');
  }
  return {
    credential,
    signedHeaders: signedHeaders.split(';'),
    signature,
    amzDate,
    expiresSeconds,
    malformed: 'AuthorizationQueryParametersError',
  };
}

/** `20240102T030405Z` → epoch ms, or NaN. */
function parseAmzDate(amzDate: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  return m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) : Number.NaN;
}

/** Encoded names and values are ASCII, so code-unit order is the byte order SigV4 sorts by. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

function sha256Hex(data: string): string {
  return createHash('sha256').update(data, 'utf8').digest('hex');
}

/**
 * Verifies the SigV4 signature of `req` against the one configured key pair, region and service.
 * `payloadHash` is the hashed payload of the canonical request; when undefined it is S3's: the
 * `x-amz-content-sha256` header, or `UNSIGNED-PAYLOAD` for a presigned URL. The canonical URI is the
 * path exactly as sent for S3, and that path encoded once more for the other services, as the
 * signing rules say (paths are not normalised: no local client sends `.` segments).
 */
export function verifySigV4(
  req: SignedRequest,
  payloadHash: string | undefined,
  credentials: SigV4Credentials,
  region: string,
  service: string,
): SigV4Result {
  const now = Date.now();
  const pairs = queryPairs(req.rawQuery);
  if (pairs === undefined) return failure(400, 'InvalidRequest', 'The query string is not valid UTF-8.');
  const params = new Map(pairs);
  const authorization = header(req.headers, 'authorization');
  const presigned = authorization === undefined && params.has('X-Amz-Algorithm');
  if (authorization === undefined && !presigned) return failure(403, 'AccessDenied', 'Access Denied');
  if (authorization !== undefined && !authorization.startsWith(`${ALGORITHM} `)) {
    return failure(
      400,
      'InvalidRequest',
      `The authorization mechanism you have provided is not supported. Please use ${ALGORITHM}.`,
    );
  }
  const presented = authorization ? fromAuthorizationHeader(authorization, req.headers) : fromQuery(params);
  if ('ok' in presented) return presented;

  // Credential scope: <access key>/<yyyymmdd>/<region>/<service>/aws4_request
  const scope = presented.credential.split('/');
  const [accessKeyId, day, scopeRegion, scopeService, terminator] = scope;
  if (scope.length !== 5 || terminator !== 'aws4_request') {
    return failure(400, presented.malformed, `Invalid credential scope "${presented.credential}".`);
  }
  if (accessKeyId !== credentials.accessKeyId) {
    return failure(
      403,
      'InvalidAccessKeyId',
      'The AWS Access Key Id you provided does not exist in our records.',
    );
  }
  const signedAt = parseAmzDate(presented.amzDate);
  if (Number.isNaN(signedAt) || day !== presented.amzDate.slice(0, 8)) {
    return failure(400, presented.malformed, `Invalid date "${presented.amzDate}" for scope day "${day}".`);
  }
  if (scopeRegion !== region) {
    return failure(
      400,
      presented.malformed,
      `The authorization header is malformed; the region '${scopeRegion}' is wrong; expecting '${region}'`,
    );
  }
  if (scopeService !== service) {
    return failure(
      400,
      presented.malformed,
      `The credential is for service '${scopeService}', not '${service}'.`,
    );
  }
  // The signature must cover `host` and every x-amz-* header sent, as S3 requires: otherwise a
  // captured request could be replayed with other metadata, copy source or lengths.
  const signed = new Set(presented.signedHeaders);
  if (!signed.has('host')) {
    return failure(400, presented.malformed, 'The signed headers must include host.');
  }
  const unsigned = Object.keys(req.headers).filter((name) => name.startsWith('x-amz-') && !signed.has(name));
  if (unsigned.length > 0) {
    return failure(
      403,
      'AccessDenied',
      `There were headers present in the request which were not signed: ${unsigned.join(', ')}`,
    );
  }
  if (presented.expiresSeconds === undefined) {
    if (Math.abs(now - signedAt) > MAX_SKEW_MS) {
      return failure(
        403,
        'RequestTimeTooSkewed',
        'The difference between the request time and the current time is too large.',
      );
    }
  } else if (now > signedAt + presented.expiresSeconds * 1000) {
    return failure(403, 'AccessDenied', 'Request has expired');
  } else if (signedAt > now + MAX_SKEW_MS) {
    // Dated in the future, a presigned URL would outlive its X-Amz-Expires.
    return failure(403, 'AccessDenied', 'Request is not valid yet');
  }

  const hashedPayload =
    payloadHash ??
    (presigned
      ? (params.get('X-Amz-Content-Sha256') ?? 'UNSIGNED-PAYLOAD')
      : header(req.headers, 'x-amz-content-sha256'));
  if (hashedPayload === undefined) {
    return failure(400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
  }
  const canonicalQuery = pairs
    .filter(([name]) => !(presigned && name === 'X-Amz-Signature'))
    .map(([name, value]) => [uriEncode(name), uriEncode(value)] as const)
    .sort(([an, av], [bn, bv]) => compare(an, bn) || compare(av, bv))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
  const canonicalHeaders = presented.signedHeaders
    .map((name) => `${name}:${(header(req.headers, name) ?? '').trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  // The path as sent is the canonical URI for S3; every other service encodes it once more.
  const path = req.rawPath || '/';
  const canonicalRequest = [
    req.method,
    service === 's3' ? path : path.split('/').map(uriEncode).join('/'),
    canonicalQuery,
    canonicalHeaders,
    presented.signedHeaders.join(';'),
    hashedPayload,
  ].join('\n');
  const stringToSign = [
    ALGORITHM,
    presented.amzDate,
    scope.slice(1).join('/'),
    sha256Hex(canonicalRequest),
  ].join('\n');
  const signingKey = hmac(
    hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), region), service),
    'aws4_request',
  );
  const expected = hmac(signingKey, stringToSign);
  const given = Buffer.from(/^[0-9a-f]{64}$/.test(presented.signature) ? presented.signature : '', 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return {
      ...failure(
        403,
        'SignatureDoesNotMatch',
        'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      ),
      canonicalRequest,
      stringToSign,
    };
  }
  return { ok: true, accessKeyId };
}
