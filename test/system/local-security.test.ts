import { execFile, execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { ListQueuesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StackProcess } from '../helpers/stack-process.js';

/**
 * The local stack on a developer's machine: every listener on loopback, and with a token configured
 * nothing runs code without it — checked with `ss` and the Debian AWS CLI (awscli).
 */
const run = promisify(execFile);
const PORTS = { s3: 19300, sqs: 19624, runtime: 13300 };
const TOKEN = 'local-token-0123456789abcdef';
// Not the public default pair: signatures with that one are refused once a token is set.
const KEYS = { AWS_ACCESS_KEY_ID: 'plant-dev', AWS_SECRET_ACCESS_KEY: 'a-secret-of-this-machine-0123' };
let stack: StackProcess;

beforeAll(async () => {
  for (const bin of ['/usr/bin/aws', '/usr/bin/ss']) {
    try {
      execFileSync(bin, ['--version'], { stdio: 'ignore' });
    } catch {
      throw new Error(`${bin} is missing: apt-get install awscli iproute2`);
    }
  }
  stack = await StackProcess.create(PORTS, { API_TOKEN: TOKEN, ...KEYS });
  await stack.start();
});

afterAll(async () => {
  await stack?.stop();
});

const invokeUrl = (fn: string) => `${stack.runtimeUrl}/2015-03-31/functions/${fn}/invocations`;

describe('local listeners', () => {
  it('every socket the stack listens on is bound to 127.0.0.1', async () => {
    const { stdout } = await run('ss', ['-ltnpH']);
    const mine = stdout.split('\n').filter((l) => l.includes(`pid=${stack.pid},`));
    const addresses = mine.map((l) => l.trim().split(/\s+/)[3]!).sort();
    expect(addresses).toEqual([PORTS.s3, PORTS.sqs, PORTS.runtime].map((p) => `127.0.0.1:${p}`).sort());
  });
});

describe('routes that run code', () => {
  it('the Lambda Invoke API refuses a request without the token', async () => {
    const res = await fetch(invokeUrl('reconcile'), { method: 'POST', body: '{}' });
    expect(res.status).toBe(403);
    expect(res.headers.get('x-amzn-errortype')).toBe('AccessDeniedException');
    const wrong = await fetch(invokeUrl('reconcile'), {
      method: 'POST',
      body: '{}',
      headers: { authorization: `Bearer ${TOKEN}x` },
    });
    expect(wrong.status).toBe(403);
  });

  it('runs it with the Bearer token', async () => {
    const res = await fetch(invokeUrl('reconcile'), {
      method: 'POST',
      body: '{}',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ checked: { raw: 0 } });
  });

  it('runs it for `aws lambda invoke` signed with the local key pair, and not with another secret', async () => {
    const out = join(stack.data, 'invoke-out.json');
    const env = { ...process.env, ...KEYS, AWS_DEFAULT_REGION: 'us-east-1' };
    const args = [
      '--endpoint-url',
      stack.runtimeUrl,
      'lambda',
      'invoke',
      '--function-name',
      'reconcile',
      out,
    ];
    await run('aws', args, { env });
    expect(JSON.parse(await readFile(out, 'utf8'))).toMatchObject({ checked: { raw: 0 } });
    await expect(
      run('aws', args, { env: { ...env, AWS_SECRET_ACCESS_KEY: 'not-the-secret' } }),
    ).rejects.toThrow(/AccessDenied/);
  });

  it('the embedded S3 and SQS refuse requests signed with another secret', async () => {
    const credentials = { accessKeyId: KEYS.AWS_ACCESS_KEY_ID, secretAccessKey: 'not-the-secret' };
    const s3 = new S3Client({
      endpoint: stack.s3Endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials,
    });
    const sqs = new SQSClient({
      endpoint: `http://127.0.0.1:${PORTS.sqs}`,
      region: 'us-east-1',
      credentials,
    });
    await expect(s3.send(new ListBucketsCommand({}))).rejects.toThrow(/signature/i);
    await expect(sqs.send(new ListQueuesCommand({}))).rejects.toThrow(/signature/i);
    s3.destroy();
    sqs.destroy();
  });
});
