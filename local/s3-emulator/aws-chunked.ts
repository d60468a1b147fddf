import { Transform, type TransformCallback } from 'node:stream';
import { S3Error } from './errors.js';

/** A chunk header or trailer line longer than this is not aws-chunked (signatures are 64 hex digits). */
const MAX_LINE = 4096;

type State = 'size' | 'data' | 'data-end' | 'trailers' | 'done';

/**
 * Decodes an `aws-chunked` request body, as sent with `x-amz-content-sha256:
 * STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]` or `STREAMING-UNSIGNED-PAYLOAD-TRAILER`:
 * `<hex size>[;chunk-signature=…]\r\n<data>\r\n` … a zero-size chunk, then trailer lines
 * (`x-amz-checksum-crc32:…`) and an empty line.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html
 * Chunk and trailer signatures are not verified: the request's own signature is, and this server only
 * ever sees loopback traffic, so a chunk could only be altered by a process that could read the key.
 */
export class AwsChunkedDecoder extends Transform {
  /** The trailer fields (lower-case names), complete once the stream has ended. */
  readonly trailers = new Map<string, string>();
  private state: State = 'size';
  private line = '';
  private remaining = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    try {
      let at = 0;
      while (at < chunk.length) {
        if (this.state === 'data') {
          const n = Math.min(this.remaining, chunk.length - at);
          this.push(chunk.subarray(at, at + n));
          at += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = 'data-end';
          continue;
        }
        const lf = chunk.indexOf(0x0a, at);
        const end = lf === -1 ? chunk.length : lf + 1;
        this.line += chunk.toString('latin1', at, end);
        at = end;
        if (this.line.length > MAX_LINE) throw malformed('line too long');
        if (lf === -1) break;
        if (!this.line.endsWith('\r\n')) throw malformed('line not ended by CRLF');
        const text = this.line.slice(0, -2);
        this.line = '';
        this.onLine(text);
      }
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    done(this.state === 'done' ? null : new S3Error('IncompleteBody', 'The aws-chunked body ended early.'));
  }

  private onLine(text: string): void {
    switch (this.state) {
      case 'size': {
        const m = /^([0-9a-fA-F]{1,12})(?:;.*)?$/.exec(text);
        if (!m) throw malformed(`bad chunk header "${text.slice(0, 80)}"`);
        this.remaining = Number.parseInt(m[1]!, 16);
        this.state = this.remaining === 0 ? 'trailers' : 'data';
        return;
      }
      case 'data-end':
        if (text !== '') throw malformed('chunk longer than its declared size');
        this.state = 'size';
        return;
      case 'trailers': {
        if (text === '') {
          this.state = 'done';
          return;
        }
        const colon = text.indexOf(':');
        if (colon <= 0) throw malformed(`bad trailer "${text.slice(0, 80)}"`);
        this.trailers.set(text.slice(0, colon).trim().toLowerCase(), text.slice(colon + 1).trim());
        return;
      }
      default:
        throw malformed('data after the final chunk');
    }
  }
}

function malformed(why: string): S3Error {
  return new S3Error('InvalidRequest', `Malformed aws-chunked body: ${why}.`);
}
