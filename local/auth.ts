import type { IncomingMessage } from 'node:http';
import { bearerMatches } from '../functions/core/bearer.js';

export interface CodeRunPolicy {
  /** `API_TOKEN`, if set. */
  token: string | undefined;
  /** The runtime listens on a loopback address only. */
  loopback: boolean;
  /** The local key pair is the well-known default (minioadmin), so a signature with it proves nothing. */
  defaultKeys: boolean;
  /** Whether the request is SigV4-signed with the local key pair. */
  signed: () => boolean;
}

/**
 * Who may use a route of the runtime that runs code (the Lambda Invoke API). With `API_TOKEN` set: a
 * request carrying it as a Bearer token, or signed (SigV4, as `aws lambda invoke` signs) with a local
 * key pair that is not the public default. With none: only on a loopback listener, and not from a web
 * page (a browser adds `Origin`; any site could otherwise make a visitor's browser run functions).
 * Returns why a request is refused, or `undefined`.
 */
export function refusal(req: IncomingMessage, policy: CodeRunPolicy): string | undefined {
  if (policy.token) {
    if (bearerMatches(req.headers.authorization, policy.token)) return undefined;
    if (req.headers.authorization?.startsWith('AWS4-HMAC-SHA256 ')) {
      if (policy.defaultKeys)
        return 'signatures with the default key pair are not accepted: use the API_TOKEN';
      if (policy.signed()) return undefined;
    }
    return 'set Authorization: Bearer $API_TOKEN, or sign the request (SigV4) with the local key pair';
  }
  if (!policy.loopback) return 'the runtime listens beyond loopback: set API_TOKEN to use this route';
  if (req.headers.origin !== undefined) return 'not from a web page (Origin present): set API_TOKEN';
  return undefined;
}
