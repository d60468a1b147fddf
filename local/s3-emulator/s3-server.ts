/**
 * The local S3: a small, durable, loopback-only S3-compatible server, ours because no maintained npm
 * emulator fits. s3rver is unmaintained, maps keys to file paths (so `..` escapes its folder) and fails
 * to list more than 1,000 keys on Node ≥ 17 (DES continuation tokens); fauxqs 2.x keeps every body in
 * memory, listens on 0.0.0.0 whatever it is told, and has no conditional writes.
 *
 * Bodies are streamed to files with generated names (`body-store.ts`); an SQLite index maps
 * (bucket, key) to them (`object-index.ts`); a write becomes visible in one index transaction, which
 * is also where conditional writes are checked; every request is SigV4-verified (`sigv4.ts`).
 * Operations are routed in `routes.ts`.
 *
 * Deliberately left out, answered 501 NotImplemented: versioning, ACLs and policies, tagging, object
 * lock, lifecycle and the other bucket configurations, SSE, POST (browser form) uploads. Signature
 * Version 2 is refused (clients can all sign V4), and chunk signatures of aws-chunked bodies are not
 * verified (see `aws-chunked.ts`).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { logger } from '../../functions/core/logger.js';
import { lockDataDir } from '../data-lock.js';
import { type SigV4Credentials, verifySigV4 } from '../sigv4.js';
import { BodyStore } from './body-store.js';
import { S3Error } from './errors.js';
import { ObjectIndex } from './object-index.js';
import type { Emulator, Reply, S3ObjectCreated } from './request-context.js';
import { parseTarget, type RequestTarget } from './request-target.js';
import { route } from './routes.js';
import { element, xmlDocument } from './xml.js';

/** How to start the emulator. */
export interface S3EmulatorOptions {
  /** The data folder; everything the emulator writes stays inside it. */
  dir: string;
  /** The address to listen on; loopback by default. */
  host?: string;
  /** 0 for an ephemeral port. */
  port: number;
  /** The one key pair requests must be signed with. */
  credentials: SigV4Credentials;
  region: string;
  /** Called after an object is committed (PutObject, CopyObject, CompleteMultipartUpload). */
  onCreated?: (o: S3ObjectCreated) => void;
}

/** A running emulator. */
export interface S3Emulator {
  /** `http://host:port`, the endpoint for path-style clients. */
  url: string;
  port: number;
  /** Closes the server and every connection, waits (at most about 2 s) for requests to end, closes the index. */
  stop(): Promise<void>;
}

/** A connection idle this long (mid-upload or between requests) is closed. */
const IDLE_TIMEOUT_MS = 120_000;

/** How long stop() lets aborted requests clean up their temporary files before closing the index. */
const STOP_GRACE_MS = 1500;

function errorDocument(err: S3Error, target: RequestTarget | undefined, resource: string, requestId: string) {
  const details: Record<string, string> = {
    ...(target?.key !== undefined && { Key: target.key }),
    ...(target?.bucket !== undefined && { BucketName: target.bucket }),
    ...err.details,
  };
  return xmlDocument(
    element(
      'Error',
      element('Code', err.code),
      element('Message', err.message),
      Object.entries(details).map(([name, value]) => element(name, value)),
      element('Resource', resource),
      element('RequestId', requestId),
    ),
  );
}

async function send(res: ServerResponse, reply: Reply): Promise<void> {
  const { body } = reply;
  if (body === undefined || typeof body === 'string') {
    const length = body === undefined ? {} : { 'content-length': Buffer.byteLength(body) };
    res.writeHead(reply.status, { ...length, ...reply.headers });
    res.end(body);
    return;
  }
  try {
    res.writeHead(reply.status, reply.headers);
  } catch (err) {
    body.destroy();
    throw err;
  }
  await pipeline(body, res);
}

/** Verifies the request's signature; throws what S3 would answer if it is not the key pair's. */
function authenticate(req: IncomingMessage, target: RequestTarget, options: S3EmulatorOptions): void {
  const auth = verifySigV4(
    { method: req.method ?? 'GET', rawPath: target.rawPath, rawQuery: target.rawQuery, headers: req.headers },
    undefined,
    options.credentials,
    options.region,
    's3',
  );
  if (!auth.ok) {
    throw new S3Error(auth.code, auth.message, {
      ...(auth.stringToSign !== undefined && { StringToSign: auth.stringToSign }),
      ...(auth.canonicalRequest !== undefined && { CanonicalRequest: auth.canonicalRequest }),
    });
  }
}

/** Starts the emulator on `options.host:options.port` with its data in `options.dir`. */
export async function startS3Emulator(options: S3EmulatorOptions): Promise<S3Emulator> {
  const host = options.host ?? '127.0.0.1';
  await mkdir(options.dir, { recursive: true });
  // Before the sweep: a second emulator on this folder would delete bodies the running one committed.
  const unlock = lockDataDir(options.dir, 'S3 emulator');
  let index: ObjectIndex | undefined;
  let store: BodyStore;
  try {
    store = await BodyStore.open(options.dir);
    index = new ObjectIndex(join(options.dir, 'index.sqlite'));
    const removed = await store.sweep(index.referencedBodies());
    if (removed > 0) logger.info({ dir: options.dir, removed }, 'S3 emulator: removed unreferenced bodies');
  } catch (err) {
    index?.close();
    unlock();
    throw err;
  }
  const emulator: Emulator = {
    index,
    store,
    region: options.region,
    owner: {
      id: createHash('sha256').update(options.credentials.accessKeyId).digest('hex'),
      displayName: 'local',
    },
    created(event) {
      try {
        options.onCreated?.(event);
      } catch (err) {
        logger.error({ err, event }, 'S3 emulator: onCreated failed');
      }
    },
  };

  async function handle(req: IncomingMessage, res: ServerResponse, stopping: AbortSignal): Promise<void> {
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    res.setHeader('x-amz-request-id', requestId);
    const gone = new AbortController();
    res.once('close', () => gone.abort());
    const signal = AbortSignal.any([gone.signal, stopping]);
    const method = req.method ?? 'GET';
    let target: RequestTarget | undefined;
    let operation = 'unrouted';
    try {
      target = parseTarget(req.url ?? '/', req.headers.host);
      authenticate(req, target, options);
      const r = route(method, target, req.headers['x-amz-copy-source'] !== undefined);
      operation = r.operation;
      await send(res, await r.run({ emulator, req, target, signal }));
    } catch (err) {
      // The client went away or the emulator is stopping: there is no one to answer.
      if (signal.aborted) {
        res.destroy();
        return;
      }
      const error = err instanceof S3Error ? err : new S3Error('InternalError');
      if (error.code === 'InternalError') {
        logger.error({ err, operation, method, url: req.url, requestId }, 'S3 emulator: internal error');
      }
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // As S3: the error of a HEAD request is its status alone.
      const body =
        method === 'HEAD' ? undefined : errorDocument(error, target, target?.rawPath ?? '/', requestId);
      await send(res, { status: error.status, headers: { 'content-type': 'application/xml' }, body });
    }
  }

  const stopping = new AbortController();
  const inflight = new Set<Promise<void>>();
  // No request timeout: a multi-gigabyte upload may take longer than Node's default 5 minutes. A
  // client that stops sending is cut off after two idle minutes instead (its temp file removed).
  const server = createServer({ requestTimeout: 0 }, (req, res) => {
    const handled = handle(req, res, stopping.signal).catch((err: unknown) => {
      logger.error({ err, url: req.url }, 'S3 emulator: request failed while answering an error');
      res.destroy();
    });
    inflight.add(handled);
    void handled.finally(() => inflight.delete(handled));
  });
  server.setTimeout(IDLE_TIMEOUT_MS, (socket) => socket.destroy());
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, host, () => resolve());
    });
  } catch (err) {
    index.close();
    unlock();
    throw err;
  }
  const { port } = server.address() as AddressInfo;
  let stopped: Promise<void> | undefined;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    stop() {
      stopped ??= (async () => {
        stopping.abort();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await Promise.race([
          Promise.allSettled([closed, ...inflight]),
          delay(STOP_GRACE_MS, undefined, { ref: false }),
        ]);
        index.close();
        unlock();
      })();
      return stopped;
    },
  };
}
