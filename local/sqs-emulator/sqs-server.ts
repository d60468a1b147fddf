import { createHash, randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { logger } from '../../functions/core/logger.js';
import { lockDataDir } from '../data-lock.js';
import { type SigV4Credentials, type SigV4ErrorCode, verifySigV4 } from '../sigv4.js';
import type { Action, ActionContext } from './action-context.js';
import { SqsError, sqsError } from './errors.js';
import { jsonProtocol } from './json-protocol.js';
import { LongPolls } from './long-polls.js';
import { messageActions } from './message-actions.js';
import { moveTaskActions } from './move-task-actions.js';
import type { WireProtocol, WireReply } from './protocol.js';
import { queryProtocol } from './query-protocol.js';
import { queueActions } from './queue-actions.js';
import { QueueNames } from './queue-names.js';
import { QueueStore } from './queue-store.js';

export interface SqsEmulatorOptions {
  /** Data folder; the SQLite database (`sqs.sqlite`) lives in it. */
  dir: string;
  /** Default `127.0.0.1`. The emulator listens on this address only. */
  host?: string;
  /** 0 for an ephemeral port. */
  port: number;
  region: string;
  /** Default `000000000000`. */
  accountId?: string;
  /** The one key pair requests must be signed with (SigV4, as SQS verifies them). */
  credentials: SigV4Credentials;
  /**
   * Local runtime deviation: on start, make every in-flight message visible at once (its consumer was
   * the process that died). Default false: they come back when their visibility timeout ends, as in SQS.
   */
  releaseInFlightOnStart?: boolean;
}

export interface SqsEmulator {
  /** `http://<host>:<port>`, the endpoint to give SQS clients. */
  url: string;
  port: number;
  /** Ends long polls at once (answered empty), closes connections and the database; within 2 s. */
  stop(): Promise<void>;
}

const ACTIONS: ReadonlyMap<string, Action> = new Map(
  Object.entries({ ...queueActions, ...messageActions, ...moveTaskActions }),
);
/** Large enough for a 10-entry batch of 256 KiB with JSON escaping; SQS itself caps requests lower. */
const MAX_REQUEST_BYTES = 8 * 1024 * 1024;
const STOP_GRACE_MS = 1_500;

/** The request's body, or `undefined` once it is over `MAX_REQUEST_BYTES`. */
async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of req) {
    size += (part as Buffer).length;
    if (size > MAX_REQUEST_BYTES) return undefined;
    parts.push(part as Buffer);
  }
  return Buffer.concat(parts);
}

/** JSON when the request names its target in `X-Amz-Target`, the Query protocol otherwise. */
function protocolOf(req: IncomingMessage): WireProtocol {
  return req.headers['x-amz-target'] === undefined ? queryProtocol : jsonProtocol;
}

/** SigV4's failures under the names SQS gives them (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/CommonErrors.html). */
const SQS_AUTH_ERRORS: Partial<Record<SigV4ErrorCode, string>> = {
  AccessDenied: 'MissingAuthenticationToken',
  InvalidAccessKeyId: 'InvalidClientTokenId',
  AuthorizationHeaderMalformed: 'IncompleteSignature',
  AuthorizationQueryParametersError: 'IncompleteSignature',
};

/** The error to answer with when the request is not signed with the key pair, or `undefined`. */
function refusal(
  request: {
    method: string;
    rawPath: string;
    rawQuery: string;
    headers: IncomingMessage['headers'];
    body: Buffer;
  },
  credentials: SigV4Credentials,
  region: string,
): SqsError | undefined {
  const result = verifySigV4(
    request,
    createHash('sha256').update(request.body).digest('hex'),
    credentials,
    region,
    'sqs',
  );
  if (result.ok) return undefined;
  const code = SQS_AUTH_ERRORS[result.code] ?? result.code;
  return new SqsError(code, code, 403, result.message);
}

/** A running emulator's state, shared by its requests. */
interface EmulatorState {
  store: QueueStore;
  longPolls: LongPolls;
  names: QueueNames;
  /** Aborted by `stop()`. */
  stopping: AbortSignal;
  credentials: SigV4Credentials;
  region: string;
}

/** Answers one request: verify the signature, decode, run the action, encode, in the request's protocol. */
async function answer(state: EmulatorState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const requestId = randomUUID();
  const url = req.url ?? '/';
  const queryAt = url.indexOf('?');
  const rawPath = queryAt < 0 ? url : url.slice(0, queryAt);
  const rawQuery = queryAt < 0 ? '' : url.slice(queryAt + 1);
  let body: Buffer | undefined;
  try {
    body = await readBody(req);
  } catch {
    res.destroy(); // the client went away mid-request
    return;
  }
  if (body === undefined) {
    res.writeHead(413, { connection: 'close' }).end();
    return;
  }
  if (state.stopping.aborted) {
    res.writeHead(503, { connection: 'close' }).end();
    return;
  }
  // Ended when the emulator stops or the client leaves (an SDK call aborted): a long poll then
  // answers before taking any message.
  const ended = new AbortController();
  const end = () => ended.abort();
  state.stopping.addEventListener('abort', end, { once: true });
  res.once('close', () => {
    state.stopping.removeEventListener('abort', end);
    if (!res.writableFinished) end(); // closed before its answer: the client left
  });
  const context: ActionContext = {
    store: state.store,
    longPolls: state.longPolls,
    names: state.names,
    signal: ended.signal,
  };
  const protocol = protocolOf(req);
  let reply: WireReply;
  try {
    const refused = refusal(
      { method: req.method ?? 'GET', rawPath, rawQuery, headers: req.headers, body },
      state.credentials,
      state.region,
    );
    if (refused) throw refused;
    const { action, input } = protocol.decode({ rawPath, rawQuery, headers: req.headers, body });
    const run = ACTIONS.get(action);
    if (!run) throw sqsError('InvalidAction', `The action ${action} is not valid for this endpoint.`);
    reply = protocol.encode(action, await run(input, context), requestId);
  } catch (err) {
    if (!(err instanceof SqsError)) logger.error({ err, requestId }, 'SQS emulator: request failed');
    const error =
      err instanceof SqsError ? err : sqsError('InternalError', 'We encountered an internal error.');
    reply = protocol.encodeError(error, requestId);
  }
  if (res.destroyed) return;
  res.writeHead(reply.status, { ...reply.headers, 'x-amzn-requestid': requestId });
  res.end(reply.body);
}

/** Starts the emulator; resolves once it listens. */
export async function startSqsEmulator(options: SqsEmulatorOptions): Promise<SqsEmulator> {
  const host = options.host ?? '127.0.0.1';
  await mkdir(options.dir, { recursive: true });
  const unlock = lockDataDir(options.dir, 'SQS emulator');
  let store: QueueStore | undefined;
  const server = createServer();
  try {
    store = new QueueStore(options.dir);
    if (options.releaseInFlightOnStart) store.releaseInFlight(Date.now());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    store?.close();
    unlock();
    throw err;
  }
  const opened = store;
  const { port } = server.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const stopping = new AbortController();
  const state: EmulatorState = {
    store: opened,
    longPolls: new LongPolls(),
    names: new QueueNames(url, options.region, options.accountId ?? '000000000000'),
    stopping: stopping.signal,
    credentials: options.credentials,
    region: options.region,
  };
  // Attached before any connection event can run (this continues `listen`'s callback).
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    answer(state, req, res).catch((err: unknown) => {
      logger.error({ err }, 'SQS emulator: could not answer');
      res.destroy();
    });
  });

  const stop = async (): Promise<void> => {
    stopping.abort();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Aborted long polls answer (empty) on their next turn; their keep-alive connections then go idle.
    const closeIdle = setInterval(() => server.closeIdleConnections(), 20);
    const grace = setTimeout(() => server.closeAllConnections(), STOP_GRACE_MS);
    await closed;
    clearInterval(closeIdle);
    clearTimeout(grace);
    opened.close();
    unlock();
  };
  let stopped: Promise<void> | undefined;
  return {
    url,
    port,
    stop: () => {
      stopped ??= stop();
      return stopped;
    },
  };
}
