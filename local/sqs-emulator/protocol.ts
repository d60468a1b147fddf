import type { IncomingHttpHeaders } from 'node:http';
import type { SqsError } from './errors.js';

/**
 * An action's result in the JSON protocol's shape (the emulator's canonical form; the Query protocol
 * renders the same values as XML). `undefined` members are left out.
 */
export interface Output {
  [member: string]: OutputValue;
}
export type OutputValue = string | number | boolean | undefined | OutputValue[] | Output;

/** The parts of an HTTP request a protocol reads. */
export interface WireRequest {
  rawPath: string;
  rawQuery: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface WireReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** An action and its input, in the JSON protocol's shape. */
export interface DecodedRequest {
  action: string;
  input: Record<string, unknown>;
}

/** One of SQS's wire protocols. */
export interface WireProtocol {
  /** Reads the action and its input; throws an {@link SqsError} for a malformed request. */
  decode(request: WireRequest): DecodedRequest;
  /** Renders an action's result (`undefined` for actions that return nothing). */
  encode(action: string, output: Output | undefined, requestId: string): WireReply;
  encodeError(error: SqsError, requestId: string): WireReply;
}
