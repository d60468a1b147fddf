import type { Readable } from 'node:stream';

/** A file a source offers. `path` is relative to the source's root, `/`-separated, as the remote names it. */
export interface RemoteFile {
  path: string;
  size?: number;
  mtime?: Date;
  /** Where to download it from, when that is not derivable from `path` (HTTP listings). */
  url?: string;
}

/** What the fetch function needs from any kind of source. */
export interface SourceClient {
  list(): Promise<RemoteFile[]>;
  /** A stream of the file's bytes; it errors (never ends early silently) when the transfer is cut. */
  open(file: RemoteFile): Promise<Readable>;
  remove(file: RemoteFile): Promise<void>;
  close(): Promise<void>;
}

export type FetchErrorKind = 'unreachable' | 'auth' | 'protocol' | 'transfer' | 'config';

/** A source could not be fetched; `kind` labels the error metric. Thrown ⇒ the message is retried. */
export class FetchError extends Error {
  override name = 'FetchError';
  constructor(
    readonly source: string,
    readonly kind: FetchErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${source}: ${message}`, options);
  }
}

/** Classifies a low-level error (socket, SSH, FTP, HTTP) into a fetch error kind. */
export function classify(err: unknown): FetchErrorKind {
  const e = err as { code?: string | number; level?: string; message?: string };
  const message = String(e?.message ?? err);
  if (e?.level === 'client-authentication' || /auth|password|permission denied|530|401|403/i.test(message))
    return 'auth';
  if (
    ['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EAI_AGAIN'].includes(
      String(e?.code),
    ) ||
    /timed out|connect/i.test(message)
  ) {
    return 'unreachable';
  }
  return 'protocol';
}
