import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';

/** The digests a body can be checked against: MD5 (ETag, Content-MD5), SHA-256 and S3's checksums. */
export type DigestAlgorithm = 'md5' | 'sha1' | 'sha256' | 'crc32';

/** A pass-through stream that counts the bytes flowing through it and digests them. */
export class DigestStream extends Transform {
  size = 0;
  private readonly hashes = new Map<Exclude<DigestAlgorithm, 'crc32'>, Hash>();
  private crc: number | undefined;
  private readonly results = new Map<DigestAlgorithm, Buffer>();

  constructor(algorithms: Iterable<DigestAlgorithm>) {
    super();
    for (const algorithm of algorithms) {
      if (algorithm === 'crc32') this.crc = 0;
      else this.hashes.set(algorithm, createHash(algorithm));
    }
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.size += chunk.length;
    for (const hash of this.hashes.values()) hash.update(chunk);
    if (this.crc !== undefined) this.crc = crc32(chunk, this.crc);
    done(null, chunk);
  }

  /** The digest of everything that passed, once the stream has ended (CRC32 as 4 big-endian bytes). */
  digest(algorithm: DigestAlgorithm): Buffer {
    let result = this.results.get(algorithm);
    if (result === undefined) {
      if (algorithm === 'crc32') {
        if (this.crc === undefined) throw new Error('crc32 was not computed');
        result = Buffer.alloc(4);
        result.writeUInt32BE(this.crc);
      } else {
        const hash = this.hashes.get(algorithm);
        if (!hash) throw new Error(`${algorithm} was not computed`);
        result = hash.digest();
      }
      this.results.set(algorithm, result);
    }
    return result;
  }
}
