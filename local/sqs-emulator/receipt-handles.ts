import { randomBytes } from 'node:crypto';
import { sqsError } from './errors.js';

/**
 * A receipt handle names one receive of one message: the queue, the message and a token drawn at that
 * receive. The token is stored with the message, so a handle from an earlier receive is recognisably
 * stale. Opaque to clients, like SQS's.
 */
export interface Receipt {
  queueId: number;
  seq: number;
  token: string;
}

const FORM = /^(\d+):(\d+):([0-9a-f]{32})$/;

/** A token for a new receive. */
export function newReceiptToken(): string {
  return randomBytes(16).toString('hex');
}

export function encodeReceiptHandle({ queueId, seq, token }: Receipt): string {
  return Buffer.from(`${queueId}:${seq}:${token}`).toString('base64');
}

/** The receive a handle names; `ReceiptHandleIsInvalid` if it is not one of ours. */
export function decodeReceiptHandle(handle: string): Receipt {
  const match = FORM.exec(Buffer.from(handle, 'base64').toString('latin1'));
  if (!match) {
    throw sqsError(
      'ReceiptHandleIsInvalid',
      `The input receipt handle "${handle}" is not a valid receipt handle.`,
    );
  }
  return { queueId: Number(match[1]), seq: Number(match[2]), token: match[3]! };
}
