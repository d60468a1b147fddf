import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Upload } from '@aws-sdk/lib-storage';
import picomatch from 'picomatch';
import type { Factory, SecretRef, Source } from '../contracts/factories.js';
import { fetchStateKey } from '../contracts/keys.js';
import { s3 } from '../core/s3.js';
import { loadFetchState, saveFetchState } from './fetch-state.js';
import { connectFtp } from './ftp-source.js';
import { connectHttp } from './http-source.js';
import { FetchError, type RemoteFile, type SourceClient } from './remote.js';
import { fetchedKey } from './remote-keys.js';
import { connectS3 } from './s3-source.js';
import { connectSftp } from './sftp-source.js';

export interface FetchDeps {
  rawBucket: string;
  stateBucket: string;
  tmpDir: string;
  /** Resolves a secret by name (environment locally, SST secret when deployed). */
  secret: (name: string) => string | undefined;
  /** Epoch ms by which the run must have stopped (the function's time budget less a reserve). */
  deadline: number;
  now?: () => Date;
  progress?: (event: FetchProgress) => void;
}

export type FetchProgress =
  | { kind: 'listed'; files: number; new: number }
  /** A download under way: bytes so far (at most every 200 ms, and once at the start and the end). */
  | { kind: 'download'; path: string; bytes: number; total?: number }
  | { kind: 'file'; path: string; key: string; bytes: number; outcome: 'fetched' | 'duplicate' | 'unstable' };

export interface FetchResult {
  source: string;
  fetched: string[];
  duplicates: number;
  unstable: number;
  alreadyFetched: number;
  bytes: number;
  /** True when the run stopped for its time budget with files left: the caller enqueues a continuation. */
  continued: boolean;
}

function resolve(ref: SecretRef | undefined, deps: FetchDeps, name: string): string | undefined {
  if (!ref) return undefined;
  const value = deps.secret(ref.secret);
  if (value === undefined) throw new FetchError(name, 'config', `secret ${ref.secret} is not set`);
  return value;
}

async function connect(source: Source, name: string, deps: FetchDeps, since?: string): Promise<SourceClient> {
  switch (source.type) {
    case 'sftp':
      return connectSftp(source, name, {
        password: resolve(source.password, deps, name),
        privateKey: resolve(source.privateKey, deps, name),
      });
    case 'ftp':
    case 'ftps':
      return connectFtp(source, name, { password: resolve(source.password, deps, name) });
    case 'http':
      return connectHttp(source, name, { token: resolve(source.token, deps, name) }, since);
    case 's3':
      return connectS3(source, name);
  }
}

/** Downloads one file to `path` while hashing; never holds it in memory. */
async function download(
  client: SourceClient,
  file: RemoteFile,
  path: string,
  progress?: FetchDeps['progress'],
): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  let reported = 0;
  const report = () => {
    reported = Date.now();
    progress?.({ kind: 'download', path: file.path, bytes, total: file.size });
  };
  report();
  await pipeline(
    await client.open(file),
    new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        bytes += chunk.length;
        if (progress && Date.now() - reported >= 200) report();
        done(null, chunk);
      },
    }),
    createWriteStream(path),
  );
  report();
  return { bytes, sha256: hash.digest('hex') };
}

/**
 * Fetches what is new at one source into `raw/<factory>/<yyyy>/<mm>/<dd>/<path>`. Each file goes to
 * /tmp first (hashed on the way), then to S3 in one upload — an interrupted transfer never leaves a
 * partial object (lib-storage aborts a failed multipart upload). State is saved after every file.
 */
export async function fetchSource(factory: Factory, source: Source, deps: FetchDeps): Promise<FetchResult> {
  const name = `${factory.id}/${source.id}`;
  const now = deps.now ?? (() => new Date());
  const stateKey = fetchStateKey(factory.id, source.id);
  let { state, eTag } = await loadFetchState(deps.stateBucket, stateKey);
  const result: FetchResult = {
    source: name,
    fetched: [],
    duplicates: 0,
    unstable: 0,
    alreadyFetched: 0,
    bytes: 0,
    continued: false,
  };
  const client = await connect(source, name, deps, state.watermark);
  const work = await mkdtemp(join(deps.tmpDir, 'fetch-'));
  try {
    const matches = picomatch(source.glob, { basename: !source.glob.includes('/'), dot: false });
    const listed = (await client.list()).filter((f) => matches(f.path));
    const isNew = (f: RemoteFile) => {
      const seen = state.files[f.path];
      return (
        !seen ||
        (f.size !== undefined && seen.size !== f.size) ||
        (f.mtime !== undefined && seen.mtime !== f.mtime.toISOString())
      );
    };
    const todo = listed.filter(isNew).sort((a, b) => (a.mtime?.getTime() ?? 0) - (b.mtime?.getTime() ?? 0));
    result.alreadyFetched = listed.length - todo.length;
    deps.progress?.({ kind: 'listed', files: listed.length, new: todo.length });

    for (const file of todo) {
      if (Date.now() >= deps.deadline) {
        result.continued = true;
        break;
      }
      if (file.mtime && now().getTime() - file.mtime.getTime() < source.minAgeSeconds * 1000) {
        result.unstable++;
        deps.progress?.({ kind: 'file', path: file.path, key: '', bytes: 0, outcome: 'unstable' });
        continue;
      }
      const tmp = join(work, 'file');
      let got: { bytes: number; sha256: string };
      try {
        got = await download(client, file, tmp, deps.progress);
      } catch (err) {
        throw new FetchError(name, 'transfer', `transfer of ${file.path} failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
      if (file.size !== undefined && got.bytes !== file.size) {
        if (got.bytes > file.size) {
          // It grew while we read it: still being written. Next run.
          result.unstable++;
          deps.progress?.({ kind: 'file', path: file.path, key: '', bytes: got.bytes, outcome: 'unstable' });
          continue;
        }
        throw new FetchError(
          name,
          'transfer',
          `transfer of ${file.path} cut short: ${got.bytes} of ${file.size} bytes`,
        );
      }
      const when = file.mtime ?? now();
      const record = {
        size: file.size ?? got.bytes,
        mtime: file.mtime?.toISOString(),
        sha256: got.sha256,
        fetchedAt: now().toISOString(),
      };
      const existing = state.hashes[got.sha256];
      if (existing) {
        state.files[file.path] = { ...record, key: existing };
        result.duplicates++;
        deps.progress?.({
          kind: 'file',
          path: file.path,
          key: existing,
          bytes: got.bytes,
          outcome: 'duplicate',
        });
      } else {
        const key = fetchedKey(factory.id, when, file.path);
        await new Upload({
          client: s3(),
          params: {
            Bucket: deps.rawBucket,
            Key: key,
            Body: createReadStream(tmp),
            Metadata: {
              source: name,
              'remote-path': encodeURIComponent(file.path),
              'fetched-at': record.fetchedAt,
              sha256: got.sha256,
            },
          },
        }).done();
        state.files[file.path] = { ...record, key };
        state.hashes[got.sha256] = key;
        result.fetched.push(key);
        result.bytes += got.bytes;
        deps.progress?.({ kind: 'file', path: file.path, key, bytes: got.bytes, outcome: 'fetched' });
      }
      if (file.mtime && (!state.watermark || file.mtime.toISOString() > state.watermark))
        state.watermark = file.mtime.toISOString();
      eTag = await saveFetchState(deps.stateBucket, stateKey, state, eTag);
      if (source.afterFetch === 'delete') await client.remove(file);
      await rm(tmp, { force: true });
    }
    return result;
  } finally {
    await client.close();
    await rm(work, { recursive: true, force: true });
  }
}
