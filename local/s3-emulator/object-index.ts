import type { DatabaseSync, SQLOutputValue, StatementSync } from 'node:sqlite';
import { openDatabase, transaction } from '../sqlite.js';
import { S3Error } from './errors.js';
import { checkWrite, type Version, type WriteCondition } from './preconditions.js';

/** An object as listed: what ListObjects shows of it. */
export interface ListedObject extends Version {
  key: string;
  size: number;
}

/** An object version: its body file and the headers it was stored with. */
export interface StoredObject extends ListedObject {
  body: string;
  /** Lower-case header name → value: Content-Type and the like, and x-amz-meta-*. */
  headers: Record<string, string>;
}

/** A multipart upload in progress. */
export interface Upload {
  id: string;
  bucket: string;
  key: string;
  headers: Record<string, string>;
  initiatedMs: number;
}

/** An uploaded part of a multipart upload. */
export interface Part extends Version {
  number: number;
  body: string;
  size: number;
}

/** What a ListObjects page asks for. */
export interface ListQuery {
  prefix: string;
  delimiter: string | undefined;
  /** List what sorts after this (a key, or a common prefix returned on an earlier page). */
  startAfter: string | undefined;
  maxKeys: number;
}

/** A page of a listing: objects and common prefixes, in byte order between them. */
export interface ListPage {
  objects: ListedObject[];
  prefixes: string[];
  truncated: boolean;
  /** The last key or common prefix of the page: where the next page starts after. */
  last: string | undefined;
}

type Row = Record<string, SQLOutputValue>;

/** Bumped with any change below; a file of another version is refused rather than misread. */
const SCHEMA_VERSION = 1;
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL
  ) STRICT;
  -- Keys are stored as their UTF-8 bytes: BLOBs compare with memcmp, which is S3's listing order.
  CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    body TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    modified_ms INTEGER NOT NULL,
    headers TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
  ) STRICT, WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    headers TEXT NOT NULL,
    initiated_ms INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (bucket, key, id);
  CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    body TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    modified_ms INTEGER NOT NULL,
    PRIMARY KEY (upload_id, number)
  ) STRICT, WITHOUT ROWID;
`;

const utf8 = new TextDecoder('utf-8', { fatal: true });

function keyBytes(key: string): Buffer {
  return Buffer.from(key, 'utf8');
}

/** The first byte string after every string that starts with `prefix` (undefined: there is none). */
function successor(prefix: Buffer): Buffer | undefined {
  const bytes = Buffer.from(prefix);
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      bytes[i]! += 1;
      return bytes.subarray(0, i + 1);
    }
  }
  return undefined;
}

/** With a delimiter, the common prefix `key` rolls up into: up to the first delimiter after `prefix`. */
function commonPrefix(key: string, prefix: string, delimiter: string | undefined): string | undefined {
  if (!delimiter || !key.startsWith(prefix)) return undefined;
  const at = key.indexOf(delimiter, prefix.length);
  return at === -1 ? undefined : key.slice(0, at + delimiter.length);
}

function text(v: SQLOutputValue | undefined): string {
  if (typeof v !== 'string') throw new Error(`index: expected text, got ${typeof v}`);
  return v;
}

function integer(v: SQLOutputValue | undefined): number {
  if (typeof v !== 'number') throw new Error(`index: expected an integer, got ${typeof v}`);
  return v;
}

function key(v: SQLOutputValue | undefined): string {
  if (!(v instanceof Uint8Array)) throw new Error(`index: expected a key, got ${typeof v}`);
  return utf8.decode(v);
}

function headers(v: SQLOutputValue | undefined): Record<string, string> {
  return JSON.parse(text(v)) as Record<string, string>;
}

function listed(r: Row): ListedObject {
  return { key: key(r.key), size: integer(r.size), etag: text(r.etag), modifiedMs: integer(r.modified_ms) };
}

function stored(r: Row): StoredObject {
  return { ...listed(r), body: text(r.body), headers: headers(r.headers) };
}

function upload(r: Row): Upload {
  return {
    id: text(r.id),
    bucket: text(r.bucket),
    key: key(r.key),
    headers: headers(r.headers),
    initiatedMs: integer(r.initiated_ms),
  };
}

function part(r: Row): Part {
  return {
    number: integer(r.number),
    body: text(r.body),
    size: integer(r.size),
    etag: text(r.etag),
    modifiedMs: integer(r.modified_ms),
  };
}

/**
 * The index of buckets, objects and multipart uploads, in SQLite (WAL): which body file each key is.
 * Every change is one synchronous transaction, so it is atomic both for concurrent requests (nothing
 * else runs on this thread meanwhile) and for a kill -9 (the WAL commit is all or nothing).
 * `synchronous = NORMAL` does not fsync on commit: a committed transaction survives the process, not
 * a power cut, which is the durability a local emulator needs.
 */
export class ObjectIndex {
  private readonly db: DatabaseSync;
  private readonly sql: Record<
    | 'bucket'
    | 'buckets'
    | 'insertBucket'
    | 'deleteBucket'
    | 'anyObject'
    | 'object'
    | 'upsertObject'
    | 'deleteObject'
    | 'listFrom'
    | 'listAfter'
    | 'bodies'
    | 'upload'
    | 'insertUpload'
    | 'deleteUpload'
    | 'bucketUploads'
    | 'listUploads'
    | 'part'
    | 'parts'
    | 'upsertPart'
    | 'deleteParts',
    StatementSync
  >;

  constructor(file: string) {
    this.db = openDatabase(file, SCHEMA, SCHEMA_VERSION);
    const s = (sql: string) => this.db.prepare(sql);
    this.sql = {
      bucket: s('SELECT 1 FROM buckets WHERE name = ?'),
      buckets: s('SELECT name, created_ms FROM buckets ORDER BY name'),
      insertBucket: s('INSERT INTO buckets (name, created_ms) VALUES (?, ?) ON CONFLICT DO NOTHING'),
      deleteBucket: s('DELETE FROM buckets WHERE name = ?'),
      anyObject: s('SELECT 1 FROM objects WHERE bucket = ? LIMIT 1'),
      object: s('SELECT * FROM objects WHERE bucket = ? AND key = ?'),
      upsertObject: s(
        `INSERT OR REPLACE INTO objects (bucket, key, body, size, etag, modified_ms, headers)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      deleteObject: s('DELETE FROM objects WHERE bucket = ? AND key = ? RETURNING body'),
      listFrom: s(
        'SELECT key, size, etag, modified_ms FROM objects WHERE bucket = ? AND key >= ? ORDER BY key',
      ),
      listAfter: s(
        'SELECT key, size, etag, modified_ms FROM objects WHERE bucket = ? AND key > ? ORDER BY key',
      ),
      bodies: s('SELECT body FROM objects UNION ALL SELECT body FROM parts'),
      upload: s('SELECT * FROM uploads WHERE id = ?'),
      insertUpload: s('INSERT INTO uploads (id, bucket, key, headers, initiated_ms) VALUES (?, ?, ?, ?, ?)'),
      deleteUpload: s('DELETE FROM uploads WHERE id = ?'),
      bucketUploads: s('SELECT id FROM uploads WHERE bucket = ?'),
      listUploads: s(
        `SELECT * FROM uploads
         WHERE bucket = :bucket AND key >= :prefix
           AND (key > :keyMarker OR (key = :keyMarker AND :idMarker IS NOT NULL AND id > :idMarker))
         ORDER BY key, id`,
      ),
      part: s('SELECT * FROM parts WHERE upload_id = ? AND number = ?'),
      parts: s('SELECT * FROM parts WHERE upload_id = ? AND number > ? ORDER BY number'),
      upsertPart: s(
        `INSERT OR REPLACE INTO parts (upload_id, number, body, size, etag, modified_ms)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ),
      deleteParts: s('DELETE FROM parts WHERE upload_id = ? RETURNING body'),
    };
  }

  close(): void {
    this.db.close();
  }

  private transaction<T>(work: () => T): T {
    return transaction(this.db, work);
  }

  /** Every body file a row refers to: what the body store must keep. */
  referencedBodies(): Set<string> {
    return new Set(this.sql.bodies.all().map((r) => text(r.body)));
  }

  // Buckets

  bucketExists(name: string): boolean {
    return this.sql.bucket.get(name) !== undefined;
  }

  /** Throws NoSuchBucket unless the bucket exists. */
  requireBucket(name: string): void {
    if (!this.bucketExists(name)) throw new S3Error('NoSuchBucket', undefined, { BucketName: name });
  }

  buckets(): { name: string; createdMs: number }[] {
    return this.sql.buckets.all().map((r) => ({ name: text(r.name), createdMs: integer(r.created_ms) }));
  }

  /** Creates a bucket unless it exists. */
  createBucket(name: string, nowMs: number): void {
    this.sql.insertBucket.run(name, nowMs);
  }

  /**
   * Deletes an empty bucket (NoSuchBucket, BucketNotEmpty otherwise), and the multipart uploads still
   * in progress in it. Returns the part bodies to remove.
   */
  deleteBucket(name: string): string[] {
    return this.transaction(() => {
      this.requireBucket(name);
      if (this.sql.anyObject.get(name)) throw new S3Error('BucketNotEmpty', undefined, { BucketName: name });
      const bodies = this.sql.bucketUploads.all(name).flatMap((r) => this.dropUpload(text(r.id)));
      this.sql.deleteBucket.run(name);
      return bodies;
    });
  }

  // Objects

  getObject(bucket: string, objectKey: string): StoredObject | undefined {
    const r = this.sql.object.get(bucket, keyBytes(objectKey));
    return r && stored(r);
  }

  /**
   * Makes `object` the current version of its key if `condition` holds against the current one, in one
   * transaction. Returns the body it replaced, to remove once this has returned.
   */
  putObject(bucket: string, object: StoredObject, condition: WriteCondition): string | undefined {
    return this.transaction(() => this.replace(bucket, object, condition));
  }

  private replace(bucket: string, o: StoredObject, condition: WriteCondition): string | undefined {
    this.requireBucket(bucket);
    const current = this.getObject(bucket, o.key);
    checkWrite(condition, current, o.key);
    this.sql.upsertObject.run(
      bucket,
      keyBytes(o.key),
      o.body,
      o.size,
      o.etag,
      o.modifiedMs,
      JSON.stringify(o.headers),
    );
    return current?.body;
  }

  /** Deletes objects (missing ones are fine, as in S3) and returns their bodies. */
  deleteObjects(bucket: string, keys: readonly string[]): string[] {
    return this.transaction(() =>
      keys.flatMap((k) => this.sql.deleteObject.all(bucket, keyBytes(k)).map((r) => text(r.body))),
    );
  }

  /**
   * Lists a bucket in byte order. With a delimiter, each common prefix costs one index seek: after
   * returning it, the scan restarts at the first key past everything that starts with it.
   */
  list(bucket: string, q: ListQuery): ListPage {
    const page: ListPage = { objects: [], prefixes: [], truncated: false, last: undefined };
    if (q.maxKeys === 0) return page;
    let from: { key: Buffer; inclusive: boolean } = { key: keyBytes(q.prefix), inclusive: true };
    if (q.startAfter !== undefined && Buffer.compare(keyBytes(q.startAfter), from.key) >= 0) {
      // A common prefix returned earlier: skip everything under it, not just the prefix itself.
      const skipped =
        commonPrefix(q.startAfter, q.prefix, q.delimiter) === q.startAfter
          ? successor(keyBytes(q.startAfter))
          : undefined;
      from = skipped ? { key: skipped, inclusive: true } : { key: keyBytes(q.startAfter), inclusive: false };
    }
    let count = 0;
    for (;;) {
      let restart: Buffer | undefined;
      const rows = (from.inclusive ? this.sql.listFrom : this.sql.listAfter).iterate(bucket, from.key);
      for (const row of rows) {
        const o = listed(row);
        if (!o.key.startsWith(q.prefix)) break;
        if (count === q.maxKeys) {
          page.truncated = true;
          return page;
        }
        count++;
        const rolledUp = commonPrefix(o.key, q.prefix, q.delimiter);
        if (rolledUp !== undefined) {
          page.prefixes.push(rolledUp);
          page.last = rolledUp;
          restart = successor(keyBytes(rolledUp));
          break;
        }
        page.objects.push(o);
        page.last = o.key;
      }
      if (restart === undefined) return page;
      from = { key: restart, inclusive: true };
    }
  }

  // Multipart uploads

  createUpload(u: Upload): void {
    this.transaction(() => {
      this.requireBucket(u.bucket);
      this.sql.insertUpload.run(u.id, u.bucket, keyBytes(u.key), JSON.stringify(u.headers), u.initiatedMs);
    });
  }

  /** The upload `id` of `bucket`/`objectKey`, or NoSuchUpload. */
  requireUpload(id: string, bucket: string, objectKey: string): Upload {
    const r = this.sql.upload.get(id);
    const u = r && upload(r);
    if (!u || u.bucket !== bucket || u.key !== objectKey) {
      throw new S3Error('NoSuchUpload', undefined, { UploadId: id });
    }
    return u;
  }

  /** Parts of an upload in part-number order, after `afterNumber`, at most `limit` (+1 to see if more). */
  parts(uploadId: string, afterNumber = 0, limit = Number.MAX_SAFE_INTEGER): Part[] {
    const out: Part[] = [];
    for (const r of this.sql.parts.iterate(uploadId, afterNumber)) {
      if (out.length === limit) break;
      out.push(part(r));
    }
    return out;
  }

  /** Stores a part (replacing one with the same number) and returns the body it replaced. */
  putPart(u: Upload, p: Part): string | undefined {
    return this.transaction(() => {
      this.requireUpload(u.id, u.bucket, u.key);
      const r = this.sql.part.get(u.id, p.number);
      this.sql.upsertPart.run(u.id, p.number, p.body, p.size, p.etag, p.modifiedMs);
      return r && text(r.body);
    });
  }

  /**
   * Completes an upload: `object` (whose body holds the parts, concatenated) becomes the current version
   * if `condition` holds, and the upload ends. On a failed condition the upload stays, as in S3.
   * Returns the bodies to remove: the replaced object's and every part's.
   */
  completeUpload(u: Upload, object: StoredObject, condition: WriteCondition): string[] {
    return this.transaction(() => {
      this.requireUpload(u.id, u.bucket, u.key);
      const replaced = this.replace(u.bucket, object, condition);
      const parts = this.dropUpload(u.id);
      return replaced === undefined ? parts : [replaced, ...parts];
    });
  }

  /** Aborts an upload (NoSuchUpload if there is none) and returns its part bodies. */
  abortUpload(id: string, bucket: string, objectKey: string): string[] {
    return this.transaction(() => {
      this.requireUpload(id, bucket, objectKey);
      return this.dropUpload(id);
    });
  }

  private dropUpload(id: string): string[] {
    this.sql.deleteUpload.run(id);
    return this.sql.deleteParts.all(id).map((r) => text(r.body));
  }

  /**
   * Uploads in progress in key order, then id order (ids sort by initiation), starting after
   * (keyMarker, idMarker) as ListMultipartUploads pages do; at most `limit`.
   */
  uploads(
    bucket: string,
    prefix: string,
    keyMarker: string,
    idMarker: string | undefined,
    limit: number,
  ): Upload[] {
    const out: Upload[] = [];
    const rows = this.sql.listUploads.iterate({
      bucket,
      prefix: keyBytes(prefix),
      keyMarker: keyBytes(keyMarker),
      idMarker: idMarker ?? null,
    });
    for (const r of rows) {
      const u = upload(r);
      if (out.length === limit || !u.key.startsWith(prefix)) break;
      out.push(u);
    }
    return out;
  }
}
