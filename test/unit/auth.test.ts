import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { type CodeRunPolicy, refusal } from '../../local/auth.js';

const TOKEN = 'token-0123456789abcdef';
const request = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
const sigv4 = { authorization: 'AWS4-HMAC-SHA256 Credential=k/20261125/us-east-1/lambda/aws4_request, …' };
const policy = (p: Partial<CodeRunPolicy>): CodeRunPolicy => ({
  token: TOKEN,
  loopback: true,
  defaultKeys: false,
  signed: () => true,
  ...p,
});

describe('who may run code through the local Invoke API', () => {
  it.each([
    ['the Bearer token', policy({}), { authorization: `Bearer ${TOKEN}` }, true],
    ['another Bearer token', policy({}), { authorization: `Bearer ${TOKEN}x` }, false],
    ['nothing, with a token set', policy({}), {}, false],
    ['a signature with the local key pair', policy({}), sigv4, true],
    ['a signature that does not verify', policy({ signed: () => false }), sigv4, false],
    ['a signature with the public default key pair', policy({ defaultKeys: true }), sigv4, false],
    ['nothing, no token, on loopback', policy({ token: undefined }), {}, true],
    [
      'a web page, no token, on loopback',
      policy({ token: undefined }),
      { origin: 'https://example.com' },
      false,
    ],
    ['nothing, no token, beyond loopback', policy({ token: undefined, loopback: false }), {}, false],
    ['the token, beyond loopback', policy({ loopback: false }), { authorization: `Bearer ${TOKEN}` }, true],
  ])('%s', (_what, p, headers, allowed) => {
    const why = refusal(request(headers), p);
    if (allowed) expect(why).toBeUndefined();
    else expect(why).toMatch(/API_TOKEN|key pair|SigV4/);
  });
});
