import { createReadStream } from 'node:fs';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PutObjectCommand, S3ServiceException } from '@aws-sdk/client-s3';
import { downloadIfChanged, s3, stripETag } from '../core/s3.js';

/** The base file: the whole warehouse as of its last compaction, a DuckDB database on its own. */
export const WAREHOUSE_KEY = 'telemetry.duckdb';
/** The delta file: what changed since the base was written, and views over both (see docs/architecture.md). */
export const DELTA_KEY = 'telemetry-delta.duckdb';

/** The store refused the upload because someone else wrote the file since we read it. */
export class WarehouseConflictError extends Error {
  override name = 'WarehouseConflictError';
}

/**
 * A warehouse file in object storage and its working copy in /tmp. The copy is reused across
 * invocations while its ETag is current; a marker file records the ETag of a copy known to be
 * pristine. The marker is removed before the copy is modified (`checkout()`, or `modify()` after a
 * read-only checkout) and written back only after a successful upload, so a crash in between forces a
 * fresh download on the retry.
 */
export class WarehouseFile {
  readonly path: string;
  private readonly marker: string;

  constructor(
    private readonly bucket: string,
    dir: string,
    private readonly key = WAREHOUSE_KEY,
  ) {
    this.path = join(dir, basename(key));
    this.marker = `${this.path}.etag`;
  }

  /**
   * Makes the working copy current and returns the ETag it is based on (`undefined`: no file yet).
   * `read-only`: the copy will only be read, and stays marked pristine.
   */
  async checkout(mode: 'modify' | 'read-only' = 'modify'): Promise<string | undefined> {
    const cached = await readFile(this.marker, 'utf8').catch(() => undefined);
    const eTag = await downloadIfChanged(this.bucket, this.key, this.path, cached);
    if (eTag === undefined) await this.discard();
    else if (mode === 'modify') await this.modify();
    else if (eTag !== cached) await writeFile(this.marker, eTag);
    return eTag;
  }

  /** The working copy is about to change: it is no longer known to be pristine. */
  async modify(): Promise<void> {
    await rm(this.marker, { force: true });
  }

  /**
   * Uploads the working copy with a conditional write: `If-Match` on the ETag it was based on, or
   * `If-None-Match: *` when creating. https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
   */
  async commit(baseETag: string | undefined): Promise<string> {
    const { size } = await stat(this.path);
    try {
      const res = await s3().send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.key,
          Body: createReadStream(this.path),
          ContentLength: size,
          ContentType: 'application/vnd.duckdb',
          ...(baseETag ? { IfMatch: `"${baseETag}"` } : { IfNoneMatch: '*' }),
        }),
      );
      const eTag = stripETag(res.ETag);
      await writeFile(this.marker, eTag);
      return eTag;
    } catch (err) {
      const status = err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
      if (status === 412 || status === 409) {
        await this.discard();
        throw new WarehouseConflictError(
          `s3://${this.bucket}/${this.key}: changed since it was read (HTTP ${status})`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  async discard(): Promise<void> {
    await Promise.all([this.path, this.marker, `${this.path}.wal`].map((p) => rm(p, { force: true })));
  }
}

/** The base and delta files of one warehouse, with their working copies in one folder. */
export class WarehouseFiles {
  readonly base: WarehouseFile;
  readonly delta: WarehouseFile;

  constructor(
    readonly bucket: string,
    dir: string,
  ) {
    this.base = new WarehouseFile(bucket, dir, WAREHOUSE_KEY);
    this.delta = new WarehouseFile(bucket, dir, DELTA_KEY);
  }
}
