import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PutObjectCommand, S3ServiceException } from '@aws-sdk/client-s3';
import { DELTA_KEY } from '../contracts/keys.js';
import { downloadIfChanged, s3, stripETag } from '../core/s3.js';

/** The store refused the upload because someone else wrote the file since we read it. */
export class WarehouseConflictError extends Error {
  override name = 'WarehouseConflictError';
}

/** The base a delta names is gone (deleted after newer compactions): fetch the delta again. */
export class BaseGoneError extends Error {
  override name = 'BaseGoneError';
}

/** Removes a DuckDB file's write-ahead log: a log left by a crash would be replayed onto a new copy. */
async function removeWal(path: string): Promise<void> {
  await rm(`${path}.wal`, { force: true });
}

/**
 * A mutable warehouse file in object storage (the delta) and its working copy in /tmp. The copy is
 * reused across invocations while its ETag is current; a marker file records the ETag of a copy known
 * to be pristine. The marker is removed before the copy is modified and written back only after a
 * successful upload, so a crash in between forces a fresh download on the retry.
 */
/** A download of a warehouse file in progress: bytes so far of `total` (when the store said). */
export interface DownloadProgress {
  key: string;
  bytes: number;
  total: number | undefined;
}
export type DownloadObserver = (progress: DownloadProgress) => void;

function observe(key: string, observer: DownloadObserver | undefined) {
  return observer && ((bytes: number, total: number | undefined) => observer({ key, bytes, total }));
}

export class WarehouseFile {
  readonly path: string;
  private readonly marker: string;

  constructor(
    private readonly bucket: string,
    dir: string,
    private readonly key: string,
    private readonly onDownload?: DownloadObserver,
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
    const eTag = await downloadIfChanged(
      this.bucket,
      this.key,
      this.path,
      cached,
      observe(this.key, this.onDownload),
    );
    // Only a pristine copy may keep its log (it has none): a log beside a new copy would be replayed.
    if (eTag !== cached) await removeWal(this.path);
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
      // 412: changed; 409: a concurrent conditional write; 404: If-Match on a file since deleted.
      if (status === 412 || status === 409 || (status === 404 && baseETag)) {
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

/**
 * Local copies of base files. A base object never changes under its key, so a complete copy (a file
 * appears only once fully downloaded) is current for good. When the base changes, copies older than
 * the one before are removed: a query may still be opening the one before.
 */
export class BaseCopies {
  private previous?: string;
  private current?: string;

  constructor(
    private readonly bucket: string,
    private readonly dir: string,
    private readonly onDownload?: DownloadObserver,
  ) {}

  path(key: string): string {
    return join(this.dir, basename(key));
  }

  async fetch(key: string): Promise<string> {
    const path = this.path(key);
    await mkdir(this.dir, { recursive: true });
    if (!existsSync(path)) {
      await removeWal(path);
      if (
        (await downloadIfChanged(this.bucket, key, path, undefined, observe(key, this.onDownload))) ===
        undefined
      ) {
        throw new BaseGoneError(`s3://${this.bucket}/${key}: not found`);
      }
    }
    if (this.current !== key) {
      if (this.current !== undefined) this.previous = this.current;
      this.current = key;
      const keep = [this.current, this.previous].filter((k) => k !== undefined).map((k) => basename(k));
      for (const name of await readdir(this.dir)) {
        // In-flight downloads (`<name>.<uuid>.download`) are left to their owners.
        if (name.endsWith('.download') || keep.some((k) => name === k || name.startsWith(`${k}.`))) continue;
        await rm(join(this.dir, name), { force: true });
      }
    }
    return path;
  }

  async forget(key: string): Promise<void> {
    const path = this.path(key);
    await Promise.all([path, `${path}.wal`].map((p) => rm(p, { force: true })));
  }
}

/** The delta and the base copies of one warehouse, in one folder. */
export class WarehouseFiles {
  readonly delta: WarehouseFile;
  readonly bases: BaseCopies;
  /** Copies of level-1 files (a cache of their own: each keeps its current and previous copy). */
  readonly l1s: BaseCopies;
  /** The files the delta committed last named, by the delta's ETag (saves opening it to read). */
  named?: { eTag: string; baseKey: string; generation: number; l1Key?: string };
  /** No compaction before this time (ms since the epoch): set after one failed. */
  compactAfter?: number;

  constructor(
    readonly bucket: string,
    dir: string,
  ) {
    this.delta = new WarehouseFile(bucket, dir, DELTA_KEY);
    this.bases = new BaseCopies(bucket, join(dir, 'bases'));
    this.l1s = new BaseCopies(bucket, join(dir, 'l1'));
  }
}
