import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { BodyStore } from './body-store.js';
import type { ObjectIndex } from './object-index.js';
import type { RequestTarget } from './request-target.js';

/** What the emulator reports once an object is committed (the runtime makes an S3 event of it). */
export interface S3ObjectCreated {
  bucket: string;
  key: string;
  size: number;
  /** Without quotes, as in S3 event records. */
  eTag: string;
  eventName: 'ObjectCreated:Put' | 'ObjectCreated:Copy' | 'ObjectCreated:CompleteMultipartUpload';
}

/** The state every operation works on. */
export interface Emulator {
  index: ObjectIndex;
  store: BodyStore;
  region: string;
  /** The one account: owner of every bucket and object. */
  owner: { id: string; displayName: string };
  created(event: S3ObjectCreated): void;
}

/** One authenticated request, routed to an operation. */
export interface RequestContext {
  emulator: Emulator;
  req: IncomingMessage;
  target: RequestTarget;
  /** Aborted when the client goes away or the emulator stops. */
  signal: AbortSignal;
}

/** What an operation answers: a status, headers, and an XML text or a body stream. */
export interface Reply {
  status: number;
  headers?: OutgoingHttpHeaders;
  body?: string | Readable;
}

/** An XML reply. */
export function xmlReply(body: string, status = 200, headers: OutgoingHttpHeaders = {}): Reply {
  return { status, headers: { 'content-type': 'application/xml', ...headers }, body };
}
