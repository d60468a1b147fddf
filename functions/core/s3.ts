import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  NotFound,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { runtimeConfig } from './config.js';

let client: S3Client | undefined;

/**
 * The S3 client every function shares. With a custom endpoint (embedded emulator, MinIO) it uses
 * path-style addressing and computes checksums only when an API requires them: S3-compatible servers
 * do not all understand the SDK's default `aws-chunked` trailing checksums.
 */
export function s3(): S3Client {
  client ??= new S3Client({
    region: runtimeConfig.region,
    ...(runtimeConfig.s3Endpoint
      ? {
          endpoint: runtimeConfig.s3Endpoint,
          forcePathStyle: true,
          requestChecksumCalculation: 'WHEN_REQUIRED',
          responseChecksumValidation: 'WHEN_REQUIRED',
        }
      : {}),
  });
  return client;
}

export interface ObjectInfo {
  eTag: string;
  size: number;
  lastModified: Date;
  metadata: Record<string, string>;
}

export function stripETag(eTag: string | undefined): string {
  return (eTag ?? '').replace(/"/g, '');
}

export function isNotFound(err: unknown): boolean {
  return (
    err instanceof NoSuchKey ||
    err instanceof NotFound ||
    (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404)
  );
}

/**
 * Streams an object to `path` (never buffered whole), optionally through `transform` streams such as
 * gunzip. Returns the object's identity as read, so outputs can be keyed on the exact version.
 */
export async function downloadToFile(
  bucket: string,
  key: string,
  path: string,
  transforms: NodeJS.ReadWriteStream[] = [],
): Promise<ObjectInfo> {
  const res = await s3().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const body = res.Body as Readable;
  await pipeline([body, ...transforms, createWriteStream(path)]);
  return {
    eTag: stripETag(res.ETag),
    size: res.ContentLength ?? 0,
    lastModified: res.LastModified ?? new Date(),
    metadata: res.Metadata ?? {},
  };
}

/** Opens an object as a stream, with its identity. */
export async function openObject(bucket: string, key: string): Promise<{ body: Readable; info: ObjectInfo }> {
  const res = await s3().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return {
    body: res.Body as Readable,
    info: {
      eTag: stripETag(res.ETag),
      size: res.ContentLength ?? 0,
      lastModified: res.LastModified ?? new Date(),
      metadata: res.Metadata ?? {},
    },
  };
}

export async function headObject(bucket: string, key: string): Promise<ObjectInfo | undefined> {
  try {
    const res = await s3().send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return {
      eTag: stripETag(res.ETag),
      size: res.ContentLength ?? 0,
      lastModified: res.LastModified ?? new Date(),
      metadata: res.Metadata ?? {},
    };
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Uploads a local file; multipart for large files (lib-storage aborts the upload if a part fails). */
export async function uploadFile(
  bucket: string,
  key: string,
  path: string,
  contentType: string,
  metadata?: Record<string, string>,
): Promise<string> {
  const { size } = await stat(path);
  if (size < 16 * 1024 * 1024) {
    const res = await s3().send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: createReadStream(path),
        ContentLength: size,
        ContentType: contentType,
        Metadata: metadata,
      }),
    );
    return stripETag(res.ETag);
  }
  const res = await new Upload({
    client: s3(),
    params: {
      Bucket: bucket,
      Key: key,
      Body: createReadStream(path),
      ContentType: contentType,
      Metadata: metadata,
    },
  }).done();
  return stripETag(res.ETag);
}

export async function putJson(bucket: string, key: string, value: unknown): Promise<string> {
  const res = await s3().send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: `${JSON.stringify(value, null, 2)}\n`,
      ContentType: 'application/json',
    }),
  );
  return stripETag(res.ETag);
}

/** Reads a JSON object; `undefined` when it does not exist. */
export async function getJson(bucket: string, key: string): Promise<unknown> {
  return (await getObjectJson(bucket, key))?.value;
}

/** A JSON object and the ETag of the version read; `undefined` when there is no such object. */
export async function getObjectJson(
  bucket: string,
  key: string,
): Promise<{ value: unknown; eTag: string } | undefined> {
  try {
    const res = await s3().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return { value: JSON.parse(await res.Body!.transformToString('utf8')), eTag: stripETag(res.ETag) };
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * Downloads an object to `path` unless `cachedETag` is still current (conditional GET, 304). Returns
 * the current ETag, or `undefined` when the object does not exist. Used for every file cached in /tmp
 * by ETag: reference data, baselines, the warehouse file.
 */
export async function downloadIfChanged(
  bucket: string,
  key: string,
  path: string,
  cachedETag: string | undefined,
  onProgress?: (bytes: number, total: number | undefined) => void,
): Promise<string | undefined> {
  try {
    const res = await s3().send(
      new GetObjectCommand({
        Bucket: bucket,
        Key: key,
        IfNoneMatch: cachedETag ? `"${cachedETag}"` : undefined,
      }),
    );
    const eTag = stripETag(res.ETag);
    const body = res.Body as Readable;
    if (cachedETag && eTag === cachedETag) {
      // A store without conditional GET answers 200: the bytes are the ones we have.
      body.destroy();
      return eTag;
    }
    // A name of its own: two readers refreshing the same copy must not write into one file.
    const tmp = `${path}.${randomUUID()}.download`;
    try {
      if (onProgress) {
        let bytes = 0;
        onProgress(0, res.ContentLength);
        body.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          onProgress(bytes, res.ContentLength);
        });
      }
      await pipeline(body, createWriteStream(tmp));
      await rename(tmp, path);
    } finally {
      await rm(tmp, { force: true });
    }
    return eTag;
  } catch (err) {
    if (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 304) return cachedETag;
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** An object as a listing shows it. */
export interface ListedObject {
  key: string;
  eTag: string;
  size: number;
  lastModified: Date;
}

/** Every object under `prefix`, page by page (ListObjectsV2 continuation tokens: any number of keys). */
export async function* listObjects(bucket: string, prefix: string): AsyncGenerator<ListedObject> {
  let token: string | undefined;
  do {
    const page = await s3().send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) {
      if (!o.Key) continue;
      yield {
        key: o.Key,
        eTag: stripETag(o.ETag),
        size: o.Size ?? 0,
        lastModified: o.LastModified ?? new Date(0),
      };
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}

/** Every key under `prefix`. */
export async function listKeys(bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of listObjects(bucket, prefix)) keys.push(o.key);
  return keys;
}

export async function deleteObject(bucket: string, key: string): Promise<void> {
  await s3().send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}
