import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { logger } from '../functions/core/logger.js';
import { topology } from '../topology/topology.js';
import type { CreatedObject } from './emulators.js';

/**
 * Notifications for S3-compatible stores that have none (e.g. Garage): list the buckets the topology
 * routes, and emit an `ObjectCreated:Put` for every (key, ETag) not seen before. The watermark (newest
 * LastModified seen) and the (key, ETag) pairs near it are persisted, so a restart neither repeats nor
 * misses objects; pairs older than the watermark minus a skew allowance are forgotten.
 */
const stateSchema = z.object({
  watermark: z.string().optional(),
  /** `key\u0000etag` → LastModified, for objects within the skew window of the watermark. */
  recent: z.record(z.string(), z.string()),
});
type PollState = z.infer<typeof stateSchema>;

/** Listing is eventually consistent and clocks drift: keep remembering objects this long. */
const SKEW_MS = 5 * 60_000;

export class BucketPoller {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly s3: S3Client,
    private readonly statePath: string,
    private readonly emit: (o: CreatedObject) => Promise<unknown>,
    private readonly intervalMs = 2_000,
  ) {}

  private async load(): Promise<PollState> {
    try {
      return stateSchema.parse(JSON.parse(await readFile(this.statePath, 'utf8')));
    } catch {
      return { recent: {} };
    }
  }

  private async save(state: PollState): Promise<void> {
    await mkdir(dirname(this.statePath), { recursive: true });
    const tmp = `${this.statePath}.tmp`;
    await writeFile(tmp, JSON.stringify(state));
    await rename(tmp, this.statePath);
  }

  /** One pass over every notifying bucket; returns how many objects were emitted. */
  async pollOnce(): Promise<number> {
    const state = await this.load();
    const since = state.watermark ? Date.parse(state.watermark) - SKEW_MS : 0;
    let emitted = 0;
    let newest = state.watermark ? Date.parse(state.watermark) : 0;
    const buckets = [...new Set(topology.notifications.map((n) => n.bucket))];
    for (const bucket of buckets) {
      let token: string | undefined;
      do {
        const page = await this.s3.send(
          new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }),
        );
        for (const o of page.Contents ?? []) {
          const modified = o.LastModified?.getTime() ?? 0;
          if (modified < since) continue;
          const eTag = (o.ETag ?? '').replace(/"/g, '');
          const id = `${bucket}/${o.Key}\u0000${eTag}`;
          if (state.recent[id]) continue;
          // Emit first, remember after: a crash in between re-emits (at-least-once, like S3).
          await this.emit({ bucket, key: o.Key!, eTag, size: o.Size ?? 0, eventName: 'ObjectCreated:Put' });
          state.recent[id] = new Date(modified).toISOString();
          newest = Math.max(newest, modified);
          emitted++;
        }
        token = page.NextContinuationToken;
      } while (token);
    }
    if (newest > 0) state.watermark = new Date(newest).toISOString();
    const keepAfter = newest - SKEW_MS;
    for (const [id, at] of Object.entries(state.recent))
      if (Date.parse(at) < keepAfter) delete state.recent[id];
    await this.save(state);
    return emitted;
  }

  start(): void {
    const tick = () => {
      this.running = this.pollOnce()
        .then((n) => {
          if (n > 0) logger.info({ objects: n }, 'polling: new objects notified');
        })
        .catch((err) => logger.error({ err }, 'polling failed; will retry'))
        .finally(() => {
          if (this.timer !== undefined) this.timer = setTimeout(tick, this.intervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    const t = this.timer;
    this.timer = undefined;
    if (t) clearTimeout(t);
    await this.running;
  }
}
