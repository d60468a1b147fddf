import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { joinLines, jsonlReadings } from '../../local/demo-data.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

/**
 * The MinIO path without Docker: the embedded store's own events are switched off (webhook mode), and
 * notifications arrive only as MinIO's webhook POSTs, in MinIO's exact body format.
 */
const TOKEN = 'webhook-test-token-0123456789';
let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({ S3_NOTIFICATIONS: 'webhook', WEBHOOK_TOKEN: TOKEN });
});
afterAll(async () => {
  await stack?.stop();
});

const fixture = JSON.parse(
  readFileSync(join(import.meta.dirname, '..', '..', 'events', 'minio-webhook.json'), 'utf8'),
);

/** MinIO's body for one object: keys escaped MinIO's way (`/` as %2F, space as +). */
function minioBody(key: string, eTag: string, size: number) {
  const body = structuredClone(fixture);
  const encoded = encodeURIComponent(key).replace(/%20/g, '+');
  body.Key = `raw/${key}`;
  body.Records[0].s3.object = { ...body.Records[0].s3.object, key: encoded, eTag, size };
  return JSON.stringify(body);
}

function post(body: string, token: string | undefined = TOKEN) {
  return fetch(`${stack.runtime.url}/hooks/s3`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body,
  });
}

describe('POST /hooks/s3 (MinIO webhook)', () => {
  it.each([
    ['spaces', 'wh/2024/08/01/line 1 sensors.jsonl'],
    ['a plus sign', 'wh/2024/08/01/a+b.jsonl'],
    ['unicode', 'wh/2024/08/01/über-€.jsonl'],
    ['nested folders', 'wh/2024/08/01/deep/er/x.jsonl'],
  ])('routes an upload whose key has %s', async (_name, key) => {
    const eTag = await stack.put(
      key,
      joinLines(jsonlReadings({ seed: key.length, lines: 20, start: new Date('2024-08-01T00:00:00Z') })),
    );
    // Webhook mode: nothing happens until MinIO calls.
    const res = await post(minioBody(key, eTag, 1));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ events: 1, queued: 1 });
    const m = await stack.waitForManifest(key, eTag);
    expect(m.lines.loaded).toBe(20);
  });

  it('refuses a missing or wrong token with 401', async () => {
    const body = minioBody('wh/2024/08/01/x.jsonl', 'e', 1);
    expect((await post(body, '')).status).toBe(401);
    expect((await post(body, 'wrong-token-wrong-token')).status).toBe(401);
  });

  it('answers 400 for a body that is not an S3 notification, 200 for a test event', async () => {
    expect((await post('{"hello": "world"}')).status).toBe(400);
    const test = await post(JSON.stringify({ Event: 's3:TestEvent' }));
    expect(test.status).toBe(200);
    expect(await test.json()).toEqual({ events: 0, queued: 0 });
  });

  it('a duplicate delivery changes nothing', async () => {
    const key = 'wh/2024/08/01/dup.jsonl';
    const eTag = await stack.put(
      key,
      joinLines(jsonlReadings({ seed: 99, lines: 30, start: new Date('2024-08-01T00:00:00Z') })),
    );
    await post(minioBody(key, eTag, 1));
    const first = await stack.waitForManifest(key, eTag);
    // (Lake notifications would come from MinIO's webhook too; here only the raw ones are posted.)
    const before = await stack.list('lake');
    await post(minioBody(key, eTag, 1));
    await post(minioBody(key, eTag, 1));
    const { waitFor } = await import('../helpers/wait.js');
    await waitFor(
      async () => Object.values(await stack.runtime.queueDepths()).every((n) => n === 0),
      20_000,
      'queues drained',
    );
    expect(await stack.list('lake')).toEqual(before);
    expect((await stack.waitForManifest(key, eTag)).finishedAt).toBe(first.finishedAt);
  });

  it('answers 503 when the event cannot be queued, so MinIO keeps it in its queue dir', async () => {
    const key = 'wh/2024/08/01/unqueued.jsonl';
    const eTag = await stack.put(key, '{"ts":"2024-08-01T00:00:00Z","device":"d","metric":"m","value":1}\n');
    const original = stack.runtime.router.route.bind(stack.runtime.router);
    stack.runtime.router.route = async () => {
      throw new Error('SQS unavailable');
    };
    try {
      expect((await post(minioBody(key, eTag, 1))).status).toBe(503);
    } finally {
      stack.runtime.router.route = original;
    }
    expect((await post(minioBody(key, eTag, 1))).status).toBe(200);
    await stack.waitForManifest(key, eTag);
  });
});
