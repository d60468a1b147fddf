import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { networkInterfaces, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32 as zlibCrc32 } from 'node:zlib';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketLocationCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  type ListObjectsCommandOutput,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  S3Client,
  type S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
// The SDK's own SigV4 signer (what @aws-sdk/s3-request-presigner wraps), for presigned URLs.
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { logger } from '../../functions/core/logger.js';
import { type S3Emulator, type S3ObjectCreated, startS3Emulator } from '../../local/s3-emulator/index.js';
import { verifySigV4 } from '../../local/sigv4.js';
import { Sha256 } from '../helpers/sha256.js';
import { waitFor } from '../helpers/wait.js';

const credentials = { accessKeyId: 'emulator-key', secretAccessKey: 'emulator-secret' };
const region = 'us-east-1';
/** Signs as S3 clients do: the path is not encoded a second time. */
const signer = new SignatureV4({ service: 's3', region, credentials, sha256: Sha256, uriEscapePath: false });
const MB = 1024 * 1024;
const MAIN = resolve(import.meta.dirname, '../../local/s3-emulator/main.ts');

let root: string;
let dataDir: string;
let emulator: S3Emulator;
let s3: S3Client;
const created: S3ObjectCreated[] = [];

function clientFor(url: string, creds = credentials, extra: { maxAttempts?: number; region?: string } = {}) {
  return new S3Client({ endpoint: url, region, credentials: creds, forcePathStyle: true, ...extra });
}

async function start() {
  emulator = await startS3Emulator({
    dir: dataDir,
    port: 0,
    credentials,
    region,
    onCreated: (o) => created.push(o),
  });
  s3 = clientFor(emulator.url);
}

async function restart() {
  s3.destroy();
  await emulator.stop();
  await start();
}

function lowerCase(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
}

/** What an S3 call failed with. */
async function failure(call: Promise<unknown>) {
  try {
    await call;
  } catch (err) {
    const e = err as S3ServiceException;
    return { name: e.name, status: e.$metadata?.httpStatusCode, message: e.message };
  }
  throw new Error('expected the call to fail');
}

const md5 = (data: Buffer | string) => createHash('md5').update(data).digest('hex');
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

async function getBuffer(client: S3Client, bucket: string, key: string): Promise<Buffer> {
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

async function put(bucket: string, key: string, body: string | Buffer) {
  return (await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }))).ETag!;
}

/** Runs `work` over `items`, `concurrency` at a time. */
async function inParallel<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

/** Every file under `dir`, relative to it. */
async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
}

/** A presigned URL for `method` on bucket/key, as any S3 SDK makes one. */
async function presign(
  url: string,
  method: string,
  bucket: string,
  key: string,
  options: { expiresIn?: number; signingDate?: Date } = {},
) {
  const endpoint = new URL(url);
  const path = `/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
  const signed = await signer.presign(
    {
      method,
      protocol: 'http:',
      hostname: endpoint.hostname,
      port: Number(endpoint.port),
      path,
      query: {},
      // As @aws-sdk/s3-request-presigner does: S3 presigned URLs sign no payload.
      headers: { host: endpoint.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
    },
    { expiresIn: options.expiresIn ?? 300, signingDate: options.signingDate },
  );
  const query = Object.entries(signed.query ?? {})
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
  return `${url}${path}?${query}`;
}

/**
 * Sends a header-signed request with exactly the headers and body given (the SDK would choose its
 * own body encoding), as a client that streams aws-chunked bodies does.
 */
async function signedFetch(method: string, path: string, headers: Record<string, string>, body: Buffer) {
  const endpoint = new URL(emulator.url);
  const signed = await signer.sign({
    method,
    protocol: 'http:',
    hostname: endpoint.hostname,
    port: Number(endpoint.port),
    path,
    query: {},
    headers: { host: endpoint.host, 'content-length': String(body.length), ...headers },
  });
  return fetch(`${emulator.url}${path}`, { method, headers: signed.headers, body });
}

/** An aws-chunked body: `size;chunk-signature=…` chunks, the final zero chunk, then the trailers. */
function awsChunked(data: Buffer, chunkSize: number, trailers: string[] = []): Buffer {
  const parts: Buffer[] = [];
  const signature = ';chunk-signature='.padEnd(17 + 64, '0');
  for (let at = 0; at < data.length; at += chunkSize) {
    const chunk = data.subarray(at, at + chunkSize);
    parts.push(Buffer.from(`${chunk.length.toString(16)}${signature}\r\n`), chunk, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`0${signature}\r\n${trailers.map((t) => `${t}\r\n`).join('')}\r\n`));
  return Buffer.concat(parts);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 's3-emulator-'));
  dataDir = join(root, 'data');
  // A neighbour of the data folder, to prove nothing is written beside it.
  await mkdir(join(root, 'neighbour'));
  await writeFile(join(root, 'neighbour', 'untouched.txt'), 'untouched');
  await start();
  for (const Bucket of ['raw', 'lake', 'many', 'cond']) await s3.send(new CreateBucketCommand({ Bucket }));
});

afterAll(async () => {
  s3?.destroy();
  await emulator?.stop();
  await rm(root, { recursive: true, force: true });
});

describe('buckets', () => {
  it('creates idempotently, lists, heads, locates, refuses invalid names and deletes only when empty', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'scratch' }));
    await s3.send(new CreateBucketCommand({ Bucket: 'scratch' }));
    const { Buckets } = await s3.send(new ListBucketsCommand({}));
    expect(Buckets?.map((b) => b.Name)).toEqual(['cond', 'lake', 'many', 'raw', 'scratch']);
    await s3.send(new HeadBucketCommand({ Bucket: 'scratch' }));
    expect((await failure(s3.send(new HeadBucketCommand({ Bucket: 'missing' })))).status).toBe(404);
    for (const Bucket of ['ab', 'Upper', 'under_score', '192.168.1.1', 'a..b', '-dash', 'xn--punycode']) {
      expect(await failure(s3.send(new CreateBucketCommand({ Bucket })))).toMatchObject({
        name: 'InvalidBucketName',
        status: 400,
      });
    }
    // us-east-1 is the empty location constraint, as S3 answers.
    const location = await s3.send(new GetBucketLocationCommand({ Bucket: 'scratch' }));
    expect(location.LocationConstraint ?? '').toBe('');
    await put('scratch', 'x', 'x');
    expect(await failure(s3.send(new DeleteBucketCommand({ Bucket: 'scratch' })))).toMatchObject({
      name: 'BucketNotEmpty',
      status: 409,
    });
    await s3.send(new DeleteObjectCommand({ Bucket: 'scratch', Key: 'x' }));
    await s3.send(new DeleteBucketCommand({ Bucket: 'scratch' }));
    expect((await failure(s3.send(new HeadBucketCommand({ Bucket: 'scratch' })))).status).toBe(404);
    expect(await failure(put('scratch', 'x', 'x'))).toMatchObject({ name: 'NoSuchBucket', status: 404 });
  });
});

describe('objects', () => {
  it('puts, gets, heads and deletes with metadata and content headers, and reports creations', async () => {
    created.length = 0;
    const body = 'hello, emulator';
    const { ETag } = await s3.send(
      new PutObjectCommand({
        Bucket: 'raw',
        Key: 'objects/hello.txt',
        Body: body,
        ContentType: 'text/plain; charset=utf-8',
        ContentDisposition: 'attachment; filename="hello.txt"',
        CacheControl: 'max-age=60',
        ContentLanguage: 'en',
        Metadata: { factory: 'plant-7', 'line-count': '1' },
      }),
    );
    expect(ETag).toBe(`"${md5(body)}"`);
    expect(created).toEqual([
      {
        bucket: 'raw',
        key: 'objects/hello.txt',
        size: body.length,
        eTag: md5(body),
        eventName: 'ObjectCreated:Put',
      },
    ]);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'raw', Key: 'objects/hello.txt' }));
    expect(await got.Body!.transformToString()).toBe(body);
    expect(got).toMatchObject({
      ETag,
      ContentLength: body.length,
      ContentType: 'text/plain; charset=utf-8',
      ContentDisposition: 'attachment; filename="hello.txt"',
      CacheControl: 'max-age=60',
      ContentLanguage: 'en',
      AcceptRanges: 'bytes',
      Metadata: { factory: 'plant-7', 'line-count': '1' },
    });
    expect(Date.now() - got.LastModified!.getTime()).toBeLessThan(60_000);
    expect(got.$metadata.requestId).toMatch(/^[0-9A-F]{16}$/);
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'raw', Key: 'objects/hello.txt' }));
    expect(head).toMatchObject({ ETag, ContentLength: body.length, Metadata: { factory: 'plant-7' } });
    // response-* query parameters override the stored headers.
    const overridden = await s3.send(
      new HeadObjectCommand({
        Bucket: 'raw',
        Key: 'objects/hello.txt',
        ResponseContentType: 'application/json',
      }),
    );
    expect(overridden.ContentType).toBe('application/json');

    // Without a Content-Type (the SDK always sends one; fetch sends none for bytes), S3's default.
    const untyped = await fetch(await presign(emulator.url, 'PUT', 'raw', 'objects/untyped'), {
      method: 'PUT',
      body: new Uint8Array([1]),
    });
    expect(untyped.status).toBe(200);
    expect(
      (await s3.send(new HeadObjectCommand({ Bucket: 'raw', Key: 'objects/untyped' }))).ContentType,
    ).toBe('binary/octet-stream');

    await s3.send(new DeleteObjectCommand({ Bucket: 'raw', Key: 'objects/hello.txt' }));
    expect(
      await failure(s3.send(new GetObjectCommand({ Bucket: 'raw', Key: 'objects/hello.txt' }))),
    ).toMatchObject({
      name: 'NoSuchKey',
      status: 404,
    });
    expect(
      (await failure(s3.send(new HeadObjectCommand({ Bucket: 'raw', Key: 'objects/hello.txt' })))).status,
    ).toBe(404);
    // Deleting what is not there is a success in S3.
    const again = await s3.send(new DeleteObjectCommand({ Bucket: 'raw', Key: 'objects/hello.txt' }));
    expect(again.$metadata.httpStatusCode).toBe(204);
  });

  it('serves byte ranges and conditional reads', async () => {
    const etag = await put('raw', 'objects/digits', '0123456789');
    const range = async (Range: string) => {
      const res = await s3.send(new GetObjectCommand({ Bucket: 'raw', Key: 'objects/digits', Range }));
      return {
        status: res.$metadata.httpStatusCode,
        range: res.ContentRange,
        body: await res.Body!.transformToString(),
      };
    };
    expect(await range('bytes=2-5')).toEqual({ status: 206, range: 'bytes 2-5/10', body: '2345' });
    expect(await range('bytes=7-')).toEqual({ status: 206, range: 'bytes 7-9/10', body: '789' });
    expect(await range('bytes=-3')).toEqual({ status: 206, range: 'bytes 7-9/10', body: '789' });
    expect(await range('bytes=8-100')).toEqual({ status: 206, range: 'bytes 8-9/10', body: '89' });
    expect(
      await failure(
        s3.send(new GetObjectCommand({ Bucket: 'raw', Key: 'objects/digits', Range: 'bytes=10-' })),
      ),
    ).toMatchObject({ name: 'InvalidRange', status: 416 });

    const get = (conditions: Partial<GetObjectCommand['input']>) =>
      s3.send(new GetObjectCommand({ Bucket: 'raw', Key: 'objects/digits', ...conditions }));
    const past = new Date(Date.now() - 3_600_000);
    const future = new Date(Date.now() + 3_600_000);
    expect((await get({ IfMatch: etag })).$metadata.httpStatusCode).toBe(200);
    expect(await failure(get({ IfMatch: '"0000"' }))).toMatchObject({
      name: 'PreconditionFailed',
      status: 412,
    });
    expect((await failure(get({ IfNoneMatch: etag }))).status).toBe(304);
    expect((await get({ IfNoneMatch: '"0000"' })).$metadata.httpStatusCode).toBe(200);
    expect((await failure(get({ IfModifiedSince: future }))).status).toBe(304);
    expect((await get({ IfModifiedSince: past })).$metadata.httpStatusCode).toBe(200);
    expect((await failure(get({ IfUnmodifiedSince: past }))).status).toBe(412);
    // S3's documented combinations: If-Match true wins over If-Unmodified-Since false; If-None-Match
    // false with If-Modified-Since true is 304.
    expect((await get({ IfMatch: etag, IfUnmodifiedSince: past })).$metadata.httpStatusCode).toBe(200);
    expect((await failure(get({ IfNoneMatch: etag, IfModifiedSince: past }))).status).toBe(304);
    expect(
      (
        await failure(
          s3.send(new HeadObjectCommand({ Bucket: 'raw', Key: 'objects/digits', IfMatch: '"0"' })),
        )
      ).status,
    ).toBe(412);
  });

  it('copies objects, keeping or replacing metadata, and answers CopyObjectResult', async () => {
    created.length = 0;
    await s3.send(
      new PutObjectCommand({
        Bucket: 'raw',
        Key: 'copy/source file+1.txt',
        Body: 'copied bytes',
        ContentType: 'text/plain',
        Metadata: { origin: 'source' },
      }),
    );
    const CopySource = `raw/${encodeURIComponent('copy/source file+1.txt')}`;
    const copy = await s3.send(new CopyObjectCommand({ Bucket: 'lake', Key: 'copy/kept', CopySource }));
    expect(copy.CopyObjectResult?.ETag).toBe(`"${md5('copied bytes')}"`);
    expect(copy.CopyObjectResult?.LastModified).toBeInstanceOf(Date);
    expect(created.at(-1)).toMatchObject({
      bucket: 'lake',
      key: 'copy/kept',
      eventName: 'ObjectCreated:Copy',
    });
    const kept = await s3.send(new HeadObjectCommand({ Bucket: 'lake', Key: 'copy/kept' }));
    expect(kept).toMatchObject({ ContentType: 'text/plain', Metadata: { origin: 'source' } });

    await s3.send(
      new CopyObjectCommand({
        Bucket: 'lake',
        Key: 'copy/replaced',
        CopySource: `/${CopySource}`,
        MetadataDirective: 'REPLACE',
        ContentType: 'application/json',
        Metadata: { origin: 'replaced' },
      }),
    );
    const replaced = await s3.send(new GetObjectCommand({ Bucket: 'lake', Key: 'copy/replaced' }));
    expect(replaced).toMatchObject({ ContentType: 'application/json', Metadata: { origin: 'replaced' } });
    expect(await replaced.Body!.transformToString()).toBe('copied bytes');

    expect(
      await failure(
        s3.send(new CopyObjectCommand({ Bucket: 'raw', Key: 'copy/source file+1.txt', CopySource })),
      ),
    ).toMatchObject({ name: 'InvalidRequest', status: 400 });
    expect(
      await failure(
        s3.send(new CopyObjectCommand({ Bucket: 'lake', Key: 'x', CopySource: 'raw/copy/missing' })),
      ),
    ).toMatchObject({ name: 'NoSuchKey', status: 404 });
    expect(
      await failure(
        s3.send(new CopyObjectCommand({ Bucket: 'lake', Key: 'x', CopySource, CopySourceIfMatch: '"0"' })),
      ),
    ).toMatchObject({ name: 'PreconditionFailed', status: 412 });
  });

  it('deletes many objects at once with DeleteObjects, quietly or not', async () => {
    const keys = ['batch/a', 'batch/b', 'batch/c', 'batch/d', 'batch/e'];
    for (const key of keys) await put('raw', key, key);
    const res = await s3.send(
      new DeleteObjectsCommand({
        Bucket: 'raw',
        Delete: { Objects: [...keys.slice(0, 3), 'batch/never-existed'].map((Key) => ({ Key })) },
      }),
    );
    expect(res.Deleted?.map((d) => d.Key)).toEqual(['batch/a', 'batch/b', 'batch/c', 'batch/never-existed']);
    const quiet = await s3.send(
      new DeleteObjectsCommand({ Bucket: 'raw', Delete: { Quiet: true, Objects: [{ Key: 'batch/d' }] } }),
    );
    expect(quiet.Deleted ?? []).toEqual([]);
    const left = await s3.send(new ListObjectsV2Command({ Bucket: 'raw', Prefix: 'batch/' }));
    expect(left.Contents?.map((o) => o.Key)).toEqual(['batch/e']);
  });

  it('answers virtual-hosted-style requests (Host: <bucket>.localhost)', async () => {
    await put('raw', 'vhost/object', 'virtual');
    const host = `raw.localhost:${emulator.port}`;
    const signed = await signer.sign({
      method: 'GET',
      protocol: 'http:',
      hostname: 'raw.localhost',
      path: '/vhost/object',
      query: {},
      headers: { host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
    });
    const body = await new Promise<string>((resolve, reject) => {
      request(`${emulator.url}/vhost/object`, { headers: signed.headers }, (res) => {
        res.setEncoding('utf8');
        let text = '';
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve(text));
      })
        .on('error', reject)
        .end();
    });
    expect(body).toBe('virtual');
  });

  it('answers 501 NotImplemented, naming the operation, for what it does not do', async () => {
    await put('raw', 'objects/tagged', 'x');
    const res = await failure(
      s3.send(new PutObjectTaggingCommand({ Bucket: 'raw', Key: 'objects/tagged', Tagging: { TagSet: [] } })),
    );
    expect(res).toMatchObject({ name: 'NotImplemented', status: 501 });
    expect(res.message).toContain('PutObjectTagging');
  });
});

describe('multipart uploads', () => {
  it('uploads 12 MB with lib-storage: the ETag is the MD5 of the part MD5s, then -3', async () => {
    created.length = 0;
    const body = randomBytes(12 * MB);
    const partSize = 5 * MB;
    const upload = new Upload({
      client: s3,
      params: { Bucket: 'raw', Key: 'multipart/big.bin', Body: body, ContentType: 'application/x-test' },
      partSize,
    });
    const done = await upload.done();
    const partMd5s = [0, 1, 2].map((i) =>
      createHash('md5')
        .update(body.subarray(i * partSize, (i + 1) * partSize))
        .digest(),
    );
    const expected = `${md5(Buffer.concat(partMd5s))}-3`;
    expect(done.ETag).toBe(`"${expected}"`);
    expect(created).toEqual([
      {
        bucket: 'raw',
        key: 'multipart/big.bin',
        size: body.length,
        eTag: expected,
        eventName: 'ObjectCreated:CompleteMultipartUpload',
      },
    ]);
    const got = await getBuffer(s3, 'raw', 'multipart/big.bin');
    expect(md5(got)).toBe(md5(body));
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'raw', Key: 'multipart/big.bin' }));
    expect(head).toMatchObject({ ContentLength: body.length, ContentType: 'application/x-test' });
  });

  it('checks parts on completion, lists uploads and parts, and an abort leaves nothing behind', async () => {
    const bodiesBefore = await files(join(dataDir, 'bodies'));
    const Key = 'multipart/aborted.bin';
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'raw', Key }));
    const parts = [];
    for (const [i, size] of [MB, 2 * MB].entries()) {
      const res = await s3.send(
        new UploadPartCommand({ Bucket: 'raw', Key, UploadId, PartNumber: i + 1, Body: randomBytes(size) }),
      );
      parts.push({ PartNumber: i + 1, ETag: res.ETag! });
    }
    const listed = await s3.send(new ListPartsCommand({ Bucket: 'raw', Key, UploadId }));
    expect(listed.Parts?.map((p) => [p.PartNumber, p.Size, p.ETag])).toEqual([
      [1, MB, parts[0]!.ETag],
      [2, 2 * MB, parts[1]!.ETag],
    ]);
    const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: 'raw', Prefix: 'multipart/' }));
    expect(uploads.Uploads?.map((u) => [u.Key, u.UploadId])).toEqual([[Key, UploadId]]);
    expect(await files(join(dataDir, 'bodies'))).toHaveLength(bodiesBefore.length + 2);

    const complete = (Parts: { PartNumber: number; ETag: string }[]) =>
      failure(
        s3.send(
          new CompleteMultipartUploadCommand({ Bucket: 'raw', Key, UploadId, MultipartUpload: { Parts } }),
        ),
      );
    expect(await complete([parts[1]!, parts[0]!])).toMatchObject({ name: 'InvalidPartOrder', status: 400 });
    expect(await complete([{ PartNumber: 1, ETag: '"00"' }])).toMatchObject({
      name: 'InvalidPart',
      status: 400,
    });
    expect(await complete([{ PartNumber: 3, ETag: parts[0]!.ETag }])).toMatchObject({ name: 'InvalidPart' });
    // Every part but the last must be at least 5 MiB.
    expect(await complete(parts)).toMatchObject({ name: 'EntityTooSmall', status: 400 });

    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'raw', Key, UploadId }));
    expect(await failure(s3.send(new ListPartsCommand({ Bucket: 'raw', Key, UploadId })))).toMatchObject({
      name: 'NoSuchUpload',
      status: 404,
    });
    expect((await s3.send(new ListMultipartUploadsCommand({ Bucket: 'raw' }))).Uploads ?? []).toEqual([]);
    expect((await failure(s3.send(new HeadObjectCommand({ Bucket: 'raw', Key })))).status).toBe(404);
    expect(await files(join(dataDir, 'bodies'))).toEqual(bodiesBefore);
    expect(await readdir(join(dataDir, 'incoming'))).toEqual([]);
  });

  it('pages ListMultipartUploads by key and upload id markers, and ListParts by part number', async () => {
    const keys = ['paging/a', 'paging/a', 'paging/b'];
    const ids: string[] = [];
    for (const Key of keys) {
      ids.push((await s3.send(new CreateMultipartUploadCommand({ Bucket: 'raw', Key }))).UploadId!);
    }
    const seen: [string, string][] = [];
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    for (;;) {
      const page = await s3.send(
        new ListMultipartUploadsCommand({
          Bucket: 'raw',
          Prefix: 'paging/',
          MaxUploads: 2,
          KeyMarker,
          UploadIdMarker,
        }),
      );
      seen.push(...(page.Uploads ?? []).map((u): [string, string] => [u.Key!, u.UploadId!]));
      if (!page.IsTruncated) break;
      ({ NextKeyMarker: KeyMarker, NextUploadIdMarker: UploadIdMarker } = page);
    }
    // A key's uploads in the order they were initiated.
    expect(seen).toEqual(keys.map((key, i) => [key, ids[i]]));

    const [Key, UploadId] = [keys[2]!, ids[2]!];
    for (const PartNumber of [1, 2, 3]) {
      await s3.send(
        new UploadPartCommand({ Bucket: 'raw', Key, UploadId, PartNumber, Body: `part ${PartNumber}` }),
      );
    }
    const first = await s3.send(new ListPartsCommand({ Bucket: 'raw', Key, UploadId, MaxParts: 2 }));
    expect(first.Parts?.map((p) => p.PartNumber)).toEqual([1, 2]);
    expect(first).toMatchObject({ IsTruncated: true, NextPartNumberMarker: '2' });
    const rest = await s3.send(
      new ListPartsCommand({ Bucket: 'raw', Key, UploadId, PartNumberMarker: first.NextPartNumberMarker }),
    );
    expect(rest.Parts?.map((p) => p.PartNumber)).toEqual([3]);
    for (const [i, key] of keys.entries()) {
      await s3.send(new AbortMultipartUploadCommand({ Bucket: 'raw', Key: key, UploadId: ids[i] }));
    }
  });

  it('copies a byte range of an object into a part with UploadPartCopy', async () => {
    const source = randomBytes(6 * MB);
    await put('raw', 'multipart/copy-source', source);
    const Key = 'multipart/from-copy';
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'raw', Key }));
    const CopySource = 'raw/multipart/copy-source';
    const first = await s3.send(
      new UploadPartCopyCommand({
        Bucket: 'raw',
        Key,
        UploadId,
        PartNumber: 1,
        CopySource,
        CopySourceRange: 'bytes=0-5242879',
      }),
    );
    const second = await s3.send(
      new UploadPartCopyCommand({ Bucket: 'raw', Key, UploadId, PartNumber: 2, CopySource }),
    );
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: 'raw',
        Key,
        UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: first.CopyPartResult!.ETag! },
            { PartNumber: 2, ETag: second.CopyPartResult!.ETag! },
          ],
        },
      }),
    );
    const got = await getBuffer(s3, 'raw', Key);
    expect(md5(got)).toBe(md5(Buffer.concat([source.subarray(0, 5 * MB), source])));
  });
});

describe('keys are opaque strings', () => {
  const traversal = 'demo/a/b/c/h/../../../../../../../../escape/x.jsonl';
  it.each([
    ['dot-dot segments', traversal],
    ['a dot segment', 'demo/2026/11/25/./x.jsonl'],
    ['a double slash', 'demo//x.jsonl'],
    ['a leading slash', '/demo/x.jsonl'],
    ['a 300-byte segment', `demo/${'s'.repeat(300)}/x.jsonl`],
    ['1,024 bytes', 'demo/'.padEnd(1024, 'k')],
    ['spaces', 'demo/with space/and  two.jsonl'],
    ['plus signs', 'demo/a+b/c+d.jsonl'],
    ['percent signs', 'demo/100%/%41%2F.jsonl'],
    ['unicode', 'demo/données/日本語/🙂.jsonl'],
    ['a question mark', 'demo/what?/x?y=1'],
    ['a hash', 'demo/tag#1/#x'],
    ['a tab', 'demo/tab\there'],
  ])('a key with %s round-trips through put, get, list and head', async (_, key) => {
    const body = Buffer.from(`body of ${key}`);
    expect(await put('raw', key, body)).toBe(`"${md5(body)}"`);
    expect(await getBuffer(s3, 'raw', key)).toEqual(body);
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'raw', Prefix: key }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual([key]);
    expect((await s3.send(new HeadObjectCommand({ Bucket: 'raw', Key: key }))).ContentLength).toBe(
      body.length,
    );
  });

  it('writes nothing outside the data folder, whatever the key', async () => {
    await put('raw', traversal, 'trying to escape');
    const outside = (await files(root)).filter((f) => !f.startsWith(`data/`));
    expect(outside).toEqual([join('neighbour', 'untouched.txt')]);
    // Inside, only the index and bodies with generated names: no key became a path.
    for (const file of await files(dataDir)) {
      expect(file).toMatch(/^(LOCK|index\.sqlite(-wal|-shm)?|bodies\/[0-9a-f-]{36})$/);
    }
    expect(await readFile(join(root, 'neighbour', 'untouched.txt'), 'utf8')).toBe('untouched');
  });

  it('a key naming another bucket through .. stays in its own bucket', async () => {
    await put('raw', 'demo/../../lake/x.jsonl', 'raw data');
    expect((await failure(s3.send(new HeadObjectCommand({ Bucket: 'lake', Key: 'x.jsonl' })))).status).toBe(
      404,
    );
    const lake = await s3.send(new ListObjectsV2Command({ Bucket: 'lake' }));
    expect(lake.Contents?.map((o) => o.Key) ?? []).not.toContain('x.jsonl');
    expect((await getBuffer(s3, 'raw', 'demo/../../lake/x.jsonl')).toString()).toBe('raw data');
  });

  it('a/./b and a/b are two keys, still after a restart', async () => {
    await put('raw', 'demo/2026/11/25/./x.jsonl', 'with dot');
    await put('raw', 'demo/2026/11/25/x.jsonl', 'without dot');
    await restart();
    expect((await getBuffer(s3, 'raw', 'demo/2026/11/25/./x.jsonl')).toString()).toBe('with dot');
    expect((await getBuffer(s3, 'raw', 'demo/2026/11/25/x.jsonl')).toString()).toBe('without dot');
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'raw', Prefix: 'demo/2026/11/25/' }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual([
      'demo/2026/11/25/./x.jsonl',
      'demo/2026/11/25/x.jsonl',
    ]);
  });

  it('refuses a key of 1,025 bytes with KeyTooLongError', async () => {
    expect(await failure(put('raw', 'demo/'.padEnd(1025, 'k'), 'x'))).toMatchObject({
      name: 'KeyTooLongError',
      status: 400,
    });
    // Multi-byte characters count as their UTF-8 bytes.
    expect(await failure(put('raw', 'é'.repeat(513), 'x'))).toMatchObject({ name: 'KeyTooLongError' });
  });
});

describe('listing 5,000 keys', () => {
  const TOPS = ['manifests', 'normalized', 'rejected', 'warehouse'];
  // Keys whose UTF-16 order differs from their UTF-8 byte order (S3's), and neighbours of the prefixes.
  const ODD = [
    'Zeta',
    'zeta',
    'é-accent',
    '\uff5ewave',
    '🙂smile',
    'a b',
    'a+b',
    'normalized',
    'normalized/',
    'normalized0',
  ];
  const keys = [
    ...ODD,
    ...Array.from(
      { length: 5000 - ODD.length },
      (_, i) =>
        `${TOPS[i % 4]}/factory=f${i % 7}/date=2026-01-${String(1 + (i % 28)).padStart(2, '0')}/part-${i}.parquet`,
    ),
  ];
  const sorted = [...keys].sort(byteOrder);

  beforeAll(async () => {
    await inParallel(keys, 32, (key) => put('many', key, key));
  }, 120_000);

  async function listV2(input: Partial<ListObjectsV2Command['input']>) {
    const entries: string[] = [];
    let ContinuationToken: string | undefined;
    let pages = 0;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: 'many', ...input, ContinuationToken }));
      const onPage = [
        ...(page.Contents ?? []).map((o) => o.Key!),
        ...(page.CommonPrefixes ?? []).map((p) => p.Prefix!),
      ];
      expect(onPage.length).toBe(page.KeyCount);
      expect(onPage.length).toBeLessThanOrEqual(input.MaxKeys ?? 1000);
      entries.push(...onPage.sort(byteOrder));
      ContinuationToken = page.NextContinuationToken;
      expect(page.IsTruncated).toBe(ContinuationToken !== undefined);
      pages++;
    } while (ContinuationToken);
    return { entries, pages };
  }

  /** What a delimiter listing must return: keys rolled up into their common prefixes, in byte order. */
  function rolledUp(prefix: string, delimiter: string) {
    const out = new Set<string>();
    for (const key of sorted.filter((k) => k.startsWith(prefix))) {
      const at = key.indexOf(delimiter, prefix.length);
      out.add(at === -1 ? key : key.slice(0, at + delimiter.length));
    }
    return [...out];
  }

  it('ListObjectsV2 returns every key once, in UTF-8 byte order, 1,000 per page', async () => {
    const { entries, pages } = await listV2({});
    expect(pages).toBe(5);
    expect(entries).toEqual(sorted);
  });

  it('ListObjectsV2 pages of 7 keys, and StartAfter', async () => {
    const { entries, pages } = await listV2({ MaxKeys: 7 });
    expect(pages).toBe(Math.ceil(5000 / 7));
    expect(entries).toEqual(sorted);
    const after = await listV2({ StartAfter: sorted[4321] });
    expect(after.entries).toEqual(sorted.slice(4322));
  });

  it('a delimiter rolls keys up into common prefixes, paging correctly across them', async () => {
    const top = rolledUp('', '/');
    expect(top).toEqual(
      expect.arrayContaining(['manifests/', 'normalized/', 'rejected/', 'warehouse/', 'normalized']),
    );
    for (const MaxKeys of [1000, 2, 3]) {
      expect((await listV2({ Delimiter: '/', MaxKeys })).entries).toEqual(top);
    }
    // The seven factories, and the folder-marker key `normalized/` itself.
    const factories = rolledUp('normalized/', '/');
    expect(factories).toHaveLength(8);
    expect((await listV2({ Prefix: 'normalized/', Delimiter: '/', MaxKeys: 3 })).entries).toEqual(factories);
    const days = rolledUp('warehouse/factory=f3/', '/');
    expect((await listV2({ Prefix: 'warehouse/factory=f3/', Delimiter: '/', MaxKeys: 5 })).entries).toEqual(
      days,
    );
    // A multi-character delimiter.
    expect((await listV2({ Delimiter: '/date=', MaxKeys: 4 })).entries).toEqual(rolledUp('', '/date='));
  });

  it('ListObjects (v1) pages with marker, and with NextMarker under a delimiter', async () => {
    const entries: string[] = [];
    let Marker: string | undefined;
    for (;;) {
      const page = await s3.send(new ListObjectsCommand({ Bucket: 'many', Marker, MaxKeys: 900 }));
      const keysOnPage = page.Contents?.map((o) => o.Key!) ?? [];
      entries.push(...keysOnPage);
      if (!page.IsTruncated) break;
      expect(page.NextMarker).toBeUndefined();
      Marker = keysOnPage.at(-1);
    }
    expect(entries).toEqual(sorted);

    const rolled: string[] = [];
    Marker = undefined;
    for (;;) {
      const page: ListObjectsCommandOutput = await s3.send(
        new ListObjectsCommand({ Bucket: 'many', Delimiter: '/', Marker, MaxKeys: 2 }),
      );
      rolled.push(
        ...[
          ...(page.Contents ?? []).map((o) => o.Key!),
          ...(page.CommonPrefixes ?? []).map((p) => p.Prefix!),
        ].sort(byteOrder),
      );
      if (!page.IsTruncated) break;
      Marker = page.NextMarker;
    }
    expect(rolled).toEqual(rolledUp('', '/'));
  });

  it('encoding-type=url encodes keys and prefixes, + included', async () => {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: 'many', EncodingType: 'url', Delimiter: '/', MaxKeys: 1000 }),
    );
    const decoded = [
      ...(page.Contents ?? []).map((o) => o.Key!),
      ...(page.CommonPrefixes ?? []).map((p) => p.Prefix!),
    ]
      .map((k) => decodeURIComponent(k))
      .sort(byteOrder);
    expect(decoded).toEqual(rolledUp('', '/'));
    expect(page.Contents?.map((o) => o.Key)).toEqual(
      expect.arrayContaining(['a%20b', 'a%2Bb', '%F0%9F%99%82smile']),
    );
  });
});

describe('conditional writes', () => {
  it('If-None-Match: * creates once; If-Match needs the current ETag; If-Match on a missing key is 404', async () => {
    const first = await s3.send(
      new PutObjectCommand({ Bucket: 'cond', Key: 'once', Body: '1', IfNoneMatch: '*' }),
    );
    expect(first.ETag).toBe(`"${md5('1')}"`);
    expect(
      await failure(
        s3.send(new PutObjectCommand({ Bucket: 'cond', Key: 'once', Body: '2', IfNoneMatch: '*' })),
      ),
    ).toMatchObject({ name: 'PreconditionFailed', status: 412 });
    const second = await s3.send(
      new PutObjectCommand({ Bucket: 'cond', Key: 'once', Body: '2', IfMatch: first.ETag }),
    );
    expect(
      await failure(
        s3.send(new PutObjectCommand({ Bucket: 'cond', Key: 'once', Body: '3', IfMatch: first.ETag })),
      ),
    ).toMatchObject({ name: 'PreconditionFailed', status: 412 });
    expect(
      await failure(
        s3.send(new PutObjectCommand({ Bucket: 'cond', Key: 'missing', Body: '1', IfMatch: first.ETag })),
      ),
    ).toMatchObject({ name: 'NoSuchKey', status: 404 });
    expect((await getBuffer(s3, 'cond', 'once')).toString()).toBe('2');
    expect(second.ETag).toBe(`"${md5('2')}"`);
    // A failed conditional write leaves no body behind.
    expect(await readdir(join(dataDir, 'incoming'))).toEqual([]);
  });

  it('of 20 concurrent writes with the same If-Match, exactly one wins', async () => {
    const base = await put('cond', 'race', 'base');
    const attempts = Array.from({ length: 20 }, (_, i) => `writer ${i}`);
    const results = await Promise.allSettled(
      attempts.map((Body) =>
        s3.send(new PutObjectCommand({ Bucket: 'cond', Key: 'race', Body, IfMatch: base })),
      ),
    );
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [attempts[i]!] : []));
    expect(won).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') expect((r.reason as S3ServiceException).name).toBe('PreconditionFailed');
    }
    expect((await getBuffer(s3, 'cond', 'race')).toString()).toBe(won[0]);
  });

  it('of 20 concurrent If-None-Match: * creations, exactly one wins', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        s3.send(new PutObjectCommand({ Bucket: 'cond', Key: 'create-race', Body: `${i}`, IfNoneMatch: '*' })),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });

  it('CompleteMultipartUpload honours If-Match and If-None-Match; of 20 racing completions one wins', async () => {
    const Key = 'mpu-race';
    const base = await put('cond', Key, 'base');
    const uploads = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'cond', Key }));
        const part = await s3.send(
          new UploadPartCommand({ Bucket: 'cond', Key, UploadId, PartNumber: 1, Body: `completion ${i}` }),
        );
        return { UploadId: UploadId!, Parts: [{ PartNumber: 1, ETag: part.ETag! }], body: `completion ${i}` };
      }),
    );
    const complete = (u: (typeof uploads)[number], conditions: { IfMatch?: string; IfNoneMatch?: string }) =>
      s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: 'cond',
          Key,
          UploadId: u.UploadId,
          MultipartUpload: { Parts: u.Parts },
          ...conditions,
        }),
      );
    expect(await failure(complete(uploads[0]!, { IfNoneMatch: '*' }))).toMatchObject({
      name: 'PreconditionFailed',
      status: 412,
    });
    const results = await Promise.allSettled(uploads.map((u) => complete(u, { IfMatch: base })));
    const won = uploads.filter((_, i) => results[i]!.status === 'fulfilled');
    expect(won).toHaveLength(1);
    expect((await getBuffer(s3, 'cond', Key)).toString()).toBe(won[0]!.body);
    // As in S3, a failed condition leaves the upload in place, to retry or abort.
    const left = await s3.send(new ListMultipartUploadsCommand({ Bucket: 'cond', Prefix: Key }));
    expect(left.Uploads).toHaveLength(19);
    for (const u of left.Uploads ?? []) {
      await s3.send(new AbortMultipartUploadCommand({ Bucket: 'cond', Key, UploadId: u.UploadId }));
    }
  });
});

describe('authentication (SigV4)', () => {
  it('refuses a wrong secret, an unknown key, another region, and anonymous requests', async () => {
    const wrongSecret = clientFor(emulator.url, { ...credentials, secretAccessKey: 'wrong' });
    expect(await failure(wrongSecret.send(new ListBucketsCommand({})))).toMatchObject({
      name: 'SignatureDoesNotMatch',
      status: 403,
    });
    const unknownKey = clientFor(emulator.url, { ...credentials, accessKeyId: 'nobody' });
    expect(
      await failure(unknownKey.send(new GetObjectCommand({ Bucket: 'raw', Key: 'objects/digits' }))),
    ).toMatchObject({ name: 'InvalidAccessKeyId', status: 403 });
    const otherRegion = clientFor(emulator.url, credentials, { region: 'eu-west-1' });
    expect(await failure(otherRegion.send(new ListBucketsCommand({})))).toMatchObject({
      name: 'AuthorizationHeaderMalformed',
      status: 400,
    });
    for (const c of [wrongSecret, unknownKey, otherRegion]) c.destroy();

    const anonymous = await fetch(`${emulator.url}/raw/objects/digits`);
    expect(anonymous.status).toBe(403);
    expect(await anonymous.text()).toContain('<Code>AccessDenied</Code>');
    const anonymousHead = await fetch(`${emulator.url}/raw/objects/digits`, { method: 'HEAD' });
    expect(anonymousHead.status).toBe(403);
    expect(await anonymousHead.text()).toBe('');
  });

  it('serves presigned GET and PUT URLs, and refuses an expired or altered one', async () => {
    const key = 'presigned/a file+1.txt';
    await put('raw', key, 'presigned body');
    const get = await fetch(await presign(emulator.url, 'GET', 'raw', key));
    expect(get.status).toBe(200);
    expect(await get.text()).toBe('presigned body');

    const putUrl = await presign(emulator.url, 'PUT', 'raw', 'presigned/uploaded');
    expect((await fetch(putUrl, { method: 'PUT', body: 'via presigned PUT' })).status).toBe(200);
    expect((await getBuffer(s3, 'raw', 'presigned/uploaded')).toString()).toBe('via presigned PUT');

    const expired = await presign(emulator.url, 'GET', 'raw', key, {
      expiresIn: 60,
      signingDate: new Date(Date.now() - 120_000),
    });
    const expiredRes = await fetch(expired);
    expect(expiredRes.status).toBe(403);
    expect(await expiredRes.text()).toContain('Request has expired');
    const altered = (await presign(emulator.url, 'GET', 'raw', key)).replace('a%20file', 'b%20file');
    const alteredRes = await fetch(altered);
    expect(alteredRes.status).toBe(403);
    expect(await alteredRes.text()).toContain('<Code>SignatureDoesNotMatch</Code>');
  });

  it('verifySigV4 serves other services too, with the payload hash they compute', async () => {
    const body = 'Action=ListQueues&Version=2012-11-05';
    const signer = new SignatureV4({ service: 'sqs', region, credentials, sha256: Sha256 });
    const signed = await signer.sign({
      method: 'POST',
      protocol: 'http:',
      hostname: '127.0.0.1',
      port: 9324,
      path: '/',
      query: {},
      headers: { host: '127.0.0.1:9324', 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    const req = { method: 'POST', rawPath: '/', rawQuery: '', headers: lowerCase(signed.headers) };
    const hash = createHash('sha256').update(body).digest('hex');
    expect(verifySigV4(req, hash, credentials, region, 'sqs')).toEqual({
      ok: true,
      accessKeyId: credentials.accessKeyId,
    });
    expect(
      verifySigV4(req, createHash('sha256').update('tampered').digest('hex'), credentials, region, 'sqs'),
    ).toMatchObject({
      ok: false,
      code: 'SignatureDoesNotMatch',
    });
    expect(verifySigV4(req, hash, credentials, region, 's3')).toMatchObject({ ok: false, status: 400 });

    // Outside S3 the canonical URI is the path encoded twice (here, Lambda's qualified function name).
    const path = '/2015-03-31/functions/etl%3Aprod/invocations';
    const lambda = await new SignatureV4({ service: 'lambda', region, credentials, sha256: Sha256 }).sign({
      method: 'POST',
      protocol: 'http:',
      hostname: '127.0.0.1',
      path,
      query: {},
      headers: { host: '127.0.0.1' },
      body: '{}',
    });
    const invoke = { method: 'POST', rawPath: path, rawQuery: '', headers: lowerCase(lambda.headers) };
    const bodyHash = createHash('sha256').update('{}').digest('hex');
    expect(verifySigV4(invoke, bodyHash, credentials, region, 'lambda')).toMatchObject({ ok: true });
  });
});

describe('request bodies', () => {
  const data = randomBytes(200_000);
  const crc32 = (b: Buffer) => {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(zlibCrc32(b));
    return out.toString('base64');
  };

  it('decodes aws-chunked bodies with chunk signatures (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)', async () => {
    const res = await signedFetch(
      'PUT',
      '/raw/bodies/signed-chunks',
      {
        'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
        'content-encoding': 'aws-chunked',
        'x-amz-decoded-content-length': String(data.length),
      },
      awsChunked(data, 65_536),
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBe(`"${md5(data)}"`);
    expect(md5(await getBuffer(s3, 'raw', 'bodies/signed-chunks'))).toBe(md5(data));
    // aws-chunked described the upload, not the object.
    expect(
      (await s3.send(new HeadObjectCommand({ Bucket: 'raw', Key: 'bodies/signed-chunks' }))).ContentEncoding,
    ).toBe(undefined);
  });

  it('checks a trailing checksum (STREAMING-UNSIGNED-PAYLOAD-TRAILER): BadDigest when it does not match', async () => {
    const put = (key: string, checksum: string) =>
      signedFetch(
        'PUT',
        `/raw/bodies/${key}`,
        {
          'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
          'content-encoding': 'aws-chunked',
          'x-amz-decoded-content-length': String(data.length),
          'x-amz-trailer': 'x-amz-checksum-crc32',
        },
        awsChunked(data, 65_536, [`x-amz-checksum-crc32:${checksum}`]),
      );
    expect((await put('trailer-ok', crc32(data))).status).toBe(200);
    const bad = await put('trailer-bad', crc32(Buffer.from('something else')));
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('<Code>BadDigest</Code>');
    expect(
      (await failure(s3.send(new HeadObjectCommand({ Bucket: 'raw', Key: 'bodies/trailer-bad' })))).status,
    ).toBe(404);
  });

  it('refuses a truncated aws-chunked body, a wrong decoded length and a wrong x-amz-content-sha256', async () => {
    const chunked = {
      'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
      'content-encoding': 'aws-chunked',
    };
    const truncated = awsChunked(data, 65_536).subarray(0, 100_000);
    const cases = [
      [{ ...chunked, 'x-amz-decoded-content-length': String(data.length) }, truncated, 'IncompleteBody'],
      [{ ...chunked, 'x-amz-decoded-content-length': '5' }, awsChunked(data, 65_536), 'IncompleteBody'],
      [
        { 'x-amz-content-sha256': createHash('sha256').update('other').digest('hex') },
        data,
        'XAmzContentSHA256Mismatch',
      ],
    ] as const;
    for (const [headers, body, code] of cases) {
      const res = await signedFetch('PUT', '/raw/bodies/refused', headers, body);
      expect(res.status).toBe(400);
      expect(await res.text()).toContain(`<Code>${code}</Code>`);
    }
    expect(
      (await failure(s3.send(new HeadObjectCommand({ Bucket: 'raw', Key: 'bodies/refused' })))).status,
    ).toBe(404);
    expect(await readdir(join(dataDir, 'incoming'))).toEqual([]);
  });
});

describe('robustness', () => {
  it('a client that disconnects mid-upload leaves no temporary file and no object', async () => {
    const body = new PassThrough();
    const controller = new AbortController();
    const upload = s3.send(
      new PutObjectCommand({ Bucket: 'raw', Key: 'robust/disconnected', Body: body, ContentLength: 8 * MB }),
      { abortSignal: controller.signal },
    );
    body.write(randomBytes(MB));
    const incoming = join(dataDir, 'incoming');
    await waitFor(
      async () => {
        const names = await readdir(incoming);
        return names.length === 1 && (await stat(join(incoming, names[0]!))).size > 0;
      },
      10_000,
      'the upload to reach the server',
    );
    controller.abort();
    await expect(upload).rejects.toThrow();
    await waitFor(async () => (await readdir(incoming)).length === 0, 10_000, 'the temporary file to go');
    expect(
      (await failure(s3.send(new HeadObjectCommand({ Bucket: 'raw', Key: 'robust/disconnected' })))).status,
    ).toBe(404);
  });

  it('a body that does not match its Content-MD5 is refused with BadDigest and not stored', async () => {
    expect(
      await failure(
        s3.send(
          new PutObjectCommand({
            Bucket: 'raw',
            Key: 'robust/bad-md5',
            Body: 'actual body',
            ContentMD5: createHash('md5').update('another body').digest('base64'),
          }),
        ),
      ),
    ).toMatchObject({ name: 'BadDigest', status: 400 });
    expect(
      (await failure(s3.send(new HeadObjectCommand({ Bucket: 'raw', Key: 'robust/bad-md5' })))).status,
    ).toBe(404);
    expect(await readdir(join(dataDir, 'incoming'))).toEqual([]);
  });

  it('an internal error is a 500 InternalError and a log line, and the server goes on', async () => {
    const logged = vi.spyOn(logger, 'error').mockImplementation(() => undefined);
    try {
      await rm(join(dataDir, 'incoming'), { recursive: true });
      expect(await failure(put('raw', 'robust/internal', 'x'))).toMatchObject({
        name: 'InternalError',
        status: 500,
      });
      expect(logged).toHaveBeenCalledWith(
        expect.objectContaining({ operation: 'PutObject' }),
        expect.any(String),
      );
    } finally {
      await mkdir(join(dataDir, 'incoming'), { recursive: true });
      logged.mockRestore();
    }
    expect(await put('raw', 'robust/internal', 'x')).toBe(`"${md5('x')}"`);
  });

  it('listens on 127.0.0.1 only', async () => {
    expect(emulator.url).toBe(`http://127.0.0.1:${emulator.port}`);
    // The kernel's table of listening TCP sockets: local address 127.0.0.1, on no other address.
    const hexPort = emulator.port.toString(16).toUpperCase().padStart(4, '0');
    const listening = (await readFile('/proc/net/tcp', 'utf8'))
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter((cols) => cols[3] === '0A' && cols[1]?.endsWith(`:${hexPort}`))
      .map((cols) => cols[1]);
    expect(listening).toEqual([`0100007F:${hexPort}`]);
    const tcp6 = await readFile('/proc/net/tcp6', 'utf8').catch(() => '');
    expect(tcp6).not.toMatch(new RegExp(`:${hexPort} [0-9A-F:]+ 0A `));
    // And a connection to another address of this machine is refused.
    const external = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    if (external) {
      await expect(fetch(`http://${external}:${emulator.port}/`)).rejects.toThrow();
    }
  });

  it('stop() closes the server and open connections promptly, even mid-upload', async () => {
    const other = await startS3Emulator({ dir: join(root, 'stop-test'), port: 0, credentials, region });
    const client = clientFor(other.url);
    await client.send(new CreateBucketCommand({ Bucket: 'stop' }));
    client.destroy();
    // An upload that sends a little and then waits: its connection is open and its body unfinished.
    const upload = request(await presign(other.url, 'PUT', 'stop', 'slow'), {
      method: 'PUT',
      headers: { 'content-length': MB },
    });
    const failed = once(upload, 'error');
    upload.write(Buffer.alloc(1000));
    await waitFor(async () => (await readdir(join(root, 'stop-test', 'incoming'))).length === 1);
    const started = Date.now();
    await other.stop();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(((await failed)[0] as NodeJS.ErrnoException).code).toBe('ECONNRESET');
    await expect(fetch(`${other.url}/`)).rejects.toThrow();
  });
});

describe('durability (the emulator as a child process)', () => {
  interface Child {
    process: ChildProcess;
    url: string;
    port: number;
  }

  async function spawnEmulator(dir: string): Promise<Child> {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--dir', dir, '--port', '0'], {
      env: {
        ...process.env,
        AWS_ACCESS_KEY_ID: credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
        AWS_REGION: region,
        LOG_LEVEL: 'fatal',
      },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const lines = createInterface({ input: child.stdout! });
    const [line] = (await Promise.race([
      once(lines, 'line'),
      once(child, 'exit').then(([code]) => {
        throw new Error(`the emulator exited with ${code} before listening`);
      }),
    ])) as [string];
    const { url, port } = JSON.parse(line) as { url: string; port: number };
    return { process: child, url, port };
  }

  async function kill(child: Child) {
    const exited = once(child.process, 'exit');
    child.process.kill('SIGKILL');
    await exited;
  }

  /** Peak resident memory of a process, from the kernel, in MB. */
  async function peakRssMb(pid: number) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
  }

  it('every acknowledged write survives kill -9 at random moments; nothing is ever partial', async () => {
    const dir = join(root, 'durable');
    const keys = Array.from({ length: 60 }, (_, i) => `durable/${i % 6}/object-${i}.bin`);
    /** Per key, every attempted version (md5, ETag) in order, and the index of the last acknowledged one. */
    const attempts = new Map<string, { md5: string; etag: string }[]>();
    const acknowledged = new Map<string, number>();
    let total = 0;

    for (let round = 0; round < 5; round++) {
      const child = await spawnEmulator(dir);
      const client = clientFor(child.url, credentials, { maxAttempts: 1 });
      await client.send(new CreateBucketCommand({ Bucket: 'durable' }));
      let stopped = false;
      let acks = 0;
      const killAfter = 10 + Math.floor(Math.random() * 30);
      let reached: () => void = () => undefined;
      const enough = new Promise<void>((r) => {
        reached = r;
      });
      // Each worker writes its own keys, so a key's commits happen in the order of its attempts.
      const worker = async (w: number) => {
        const own = keys.filter((_, i) => i % 8 === w);
        while (!stopped) {
          const key = own[Math.floor(Math.random() * own.length)]!;
          const multipart = w === 0 && Math.random() < 0.5;
          const body = randomBytes(multipart ? 6 * MB : 1 + Math.floor(Math.random() * 3 * MB));
          const etag = multipart
            ? `${md5(Buffer.concat([body.subarray(0, 5 * MB), body.subarray(5 * MB)].map((p) => createHash('md5').update(p).digest())))}-2`
            : md5(body);
          const versions = attempts.get(key) ?? [];
          attempts.set(key, versions);
          versions.push({ md5: md5(body), etag });
          const index = versions.length - 1;
          try {
            const res = multipart
              ? await new Upload({
                  client,
                  params: { Bucket: 'durable', Key: key, Body: body },
                  partSize: 5 * MB,
                }).done()
              : await client.send(new PutObjectCommand({ Bucket: 'durable', Key: key, Body: body }));
            expect(res.ETag).toBe(`"${etag}"`);
            acknowledged.set(key, Math.max(acknowledged.get(key) ?? -1, index));
            total++;
            if (++acks >= killAfter) reached();
          } catch (err) {
            if (!stopped) throw err;
          }
        }
      };
      const workers = Array.from({ length: 8 }, (_, w) => worker(w));
      await Promise.race([enough, Promise.all(workers)]);
      stopped = true;
      await kill(child);
      await Promise.all(workers);
      client.destroy();
    }

    const child = await spawnEmulator(dir);
    const client = clientFor(child.url);
    try {
      const listed = new Map<string, string>();
      let ContinuationToken: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: 'durable', MaxKeys: 17, ContinuationToken }),
        );
        for (const o of page.Contents ?? []) listed.set(o.Key!, o.ETag!.replaceAll('"', ''));
        ContinuationToken = page.NextContinuationToken;
      } while (ContinuationToken);
      expect(total).toBeGreaterThanOrEqual(50);
      for (const key of keys) {
        const versions = attempts.get(key) ?? [];
        const ack = acknowledged.get(key);
        if (ack !== undefined) expect(listed.has(key), `acknowledged ${key} is present`).toBe(true);
        if (!listed.has(key)) continue;
        // The last acknowledged version, or a later one whose commit happened but whose answer was lost.
        const candidates = versions.slice(ack ?? 0);
        const content = md5(await getBuffer(client, 'durable', key));
        const version = candidates.find((v) => v.md5 === content);
        expect(version, `${key} holds a complete version`).toBeDefined();
        expect(listed.get(key)).toBe(version!.etag);
      }
      expect(await readdir(join(dir, 'incoming'))).toEqual([]);
      // No orphans: one body per object, plus one per part of the multipart uploads a kill left open.
      const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: 'durable' }));
      let parts = 0;
      for (const u of uploads.Uploads ?? []) {
        parts +=
          (await client.send(new ListPartsCommand({ Bucket: 'durable', Key: u.Key, UploadId: u.UploadId })))
            .Parts?.length ?? 0;
      }
      expect(await readdir(join(dir, 'bodies'))).toHaveLength(listed.size + parts);
      // Reported, not asserted.
      process.stdout.write(
        `kill -9 test: ${total} acknowledged writes over 5 kills, ${listed.size} keys after\n`,
      );
    } finally {
      client.destroy();
      await kill(child);
    }
  }, 120_000);

  it('streams a 256 MB upload and download through flat memory', async () => {
    const child = await spawnEmulator(join(root, 'memory'));
    const client = clientFor(child.url);
    try {
      await client.send(new CreateBucketCommand({ Bucket: 'memory' }));
      const chunk = randomBytes(MB);
      const size = 256 * MB;
      const url = await presign(child.url, 'PUT', 'memory', 'big.bin');
      const sent = createHash('md5');
      await new Promise<void>((resolve, reject) => {
        const req = request(url, { method: 'PUT', headers: { 'content-length': size } }, (res) => {
          res.resume();
          res.on('end', () =>
            res.statusCode === 200 ? resolve() : reject(new Error(`PUT ${res.statusCode}`)),
          );
        });
        req.on('error', reject);
        void pipeline(
          Readable.from(
            (function* () {
              for (let i = 0; i < size / MB; i++) {
                sent.update(chunk);
                yield chunk;
              }
            })(),
          ),
          req,
        ).catch(reject);
      });
      const res = await client.send(new GetObjectCommand({ Bucket: 'memory', Key: 'big.bin' }));
      const received = createHash('md5');
      for await (const part of res.Body as Readable) received.update(part as Buffer);
      expect(received.digest('hex')).toBe(sent.digest('hex'));
      expect(res.ContentLength).toBe(size);
      // Buffering the body would need 256 MB at least.
      const peak = await peakRssMb(child.process.pid!);
      process.stdout.write(`256 MB up and down: peak RSS of the emulator process ${peak.toFixed(0)} MB\n`);
      expect(peak).toBeLessThan(200);
    } finally {
      client.destroy();
      await kill(child);
    }
  }, 120_000);
});
