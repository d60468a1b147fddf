import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BucketPoller } from '../../local/bucket-poller.js';
import type { CreatedObject } from '../../local/emulators.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

/** Stores without bucket notifications: the runtime lists and diffs instead (S3_NOTIFICATIONS=poll). */
let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({ S3_NOTIFICATIONS: 'poll', POLL_INTERVAL_SECONDS: '0.5' });
});
afterAll(async () => {
  await stack?.stop();
});

describe('polling mode', () => {
  it('picks up an upload (the store emits no event) and processes it', async () => {
    const key = 'poll/2024/09/01/a.jsonl';
    const eTag = await stack.put(key, '{"ts":"2024-09-01T00:00:00Z","device":"d","metric":"m","value":1}\n');
    const m = await stack.waitForManifest(key, eTag);
    expect(m.lines.loaded).toBe(1);
  });

  it('emits each (key, ETag) once, across restarts, and again for a new version', async () => {
    const emitted: CreatedObject[] = [];
    const statePath = join(await mkdtemp(join(stack.data, 'poll-')), 'state.json');
    const poller = () => new BucketPoller(stack.runtime.s3, statePath, async (o) => emitted.push(o));
    const key = 'poll/2024/09/01/b.jsonl';
    await stack.put(key, '{"ts":"2024-09-01T00:00:00Z","device":"d","metric":"m","value":2}\n');
    await poller().pollOnce();
    const first = emitted.filter((o) => o.key === key);
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({ bucket: 'raw', eventName: 'ObjectCreated:Put' });
    // A new poller (a restarted runtime) with the persisted state emits nothing again.
    await poller().pollOnce();
    expect(emitted.filter((o) => o.key === key)).toHaveLength(1);
    const v2 = await stack.put(key, '{"ts":"2024-09-01T00:00:00Z","device":"d","metric":"m","value":3}\n');
    await poller().pollOnce();
    expect(emitted.filter((o) => o.key === key).map((o) => o.eTag)).toEqual([first[0]!.eTag, v2]);
    // Lake objects are listed too: the topology routes them onwards.
    expect(emitted.some((o) => o.bucket === 'lake')).toBe(true);
  });
});
