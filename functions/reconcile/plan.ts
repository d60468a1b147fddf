import { z } from 'zod';
import type { QueueName } from '../../topology/topology.js';
import { enrichedKey, manifestKeyOf, parseDataKey, partitionEnd } from '../contracts/keys.js';
import type { ListedObject } from '../core/s3.js';

/**
 * What the reconciler compares: what exists at each stage. Queues are triggers, not the record — this
 * is the record, so a lost or dead-lettered message, a crash or a wiped queue cannot hide work.
 */
export interface Inventory {
  /** The raw bucket's physical name (manifest keys are derived from it). */
  rawBucket: string;
  raw: ListedObject[];
  /** `manifests/…` by key. */
  manifests: Map<string, ListedObject>;
  /** `normalized/…`. */
  normalized: ListedObject[];
  /** `enriched/…` by key. */
  enriched: Map<string, ListedObject>;
  /**
   * The warehouse ledger by lake key: the version loaded, and the raw version it came from. `undefined`
   * while it cannot be read yet (an earlier release's single warehouse file, not adopted by a batch
   * yet): the checks against it wait.
   */
  ledger: Map<string, { eTag: string; sourceETag: string }> | undefined;
  /**
   * The raw version each manifest records (manifest key → source ETag), for the manifests whose
   * version the ledger does not hold; read from the manifests themselves.
   */
  manifestSources: Map<string, string>;
  /**
   * When each of those manifests' files ends for the warehouse's retention (`dataEnd`, ms): a file past
   * it is not sent to the warehouse again. Optional: absent, all are sent.
   */
  manifestDataEnd?: Map<string, number>;
}

/** The raw version a manifest records: from the ledger when it holds that manifest version. */
export function sourceETagOf(inv: Inventory, manifest: ListedObject): string | undefined {
  const loaded = inv.ledger?.get(manifest.key);
  return loaded?.eTag === manifest.eTag ? loaded.sourceETag : inv.manifestSources.get(manifest.key);
}

/** Why an object's event is emitted again. */
export type Reason =
  | 'no-manifest'
  | 'stale-manifest'
  | 'not-enriched'
  | 'enriched-not-loaded'
  | 'manifest-not-loaded';

/**
 * The queues where the work an object misses would be waiting if it were merely slow: while one of
 * them holds messages, the missing object may be among them.
 */
const WAITS_IN: Record<Reason, readonly QueueName[]> = {
  'no-manifest': ['etl'],
  'stale-manifest': ['etl'],
  'not-enriched': ['enrich'],
  'enriched-not-loaded': ['enrich', 'warehouse'],
  'manifest-not-loaded': ['enrich', 'warehouse'],
};

/** An object whose ObjectCreated event is sent again: raw → etl, lake → enrich (as the topology routes it). */
export interface Emission {
  bucket: 'raw' | 'lake';
  object: ListedObject;
  reason: Reason;
}

/**
 * The reconciler's memory between runs: since when an object has been missing, how often it was
 * re-emitted and when last — so a file that keeps failing is retried with exponential backoff rather
 * than every run. Entries go as soon as the object is no longer missing, so the state stays as small
 * as the backlog of missing work.
 */
export const reconcilerStateSchema = z.object({
  version: z.literal(1),
  pending: z.record(
    z.string(),
    z.object({
      missingSince: z.iso.datetime(),
      attempts: z.number().int().min(0),
      lastEmittedAt: z.iso.datetime().optional(),
    }),
  ),
});
export type ReconcilerState = z.infer<typeof reconcilerStateSchema>;

export const emptyState = (): ReconcilerState => ({ version: 1, pending: {} });

/** An emission's entry in `ReconcilerState.pending`: per version, so a new upload of a key starts afresh. */
export function pendingId(e: Pick<Emission, 'bucket' | 'object'>): string {
  return `${e.bucket}/${e.object.key}@${e.object.eTag}`;
}

export interface PlanOptions {
  now: Date;
  /** An object younger than this is left to its own notification, which may still be on its way. */
  graceSeconds: number;
  /** The longest wait between two re-emissions of the same object. */
  maxBackoffSeconds: number;
  /** Queues holding messages now (visible, in flight or delayed). */
  busyQueues: ReadonlySet<QueueName>;
  /**
   * How long an object may stay missing while the queue its work waits in is busy before it is
   * emitted anyway: a backlog is not re-emitted wholesale, yet a lost message under constant load is
   * still found.
   */
  maxDeferSeconds: number;
  /**
   * The warehouse keeps files newer than this (`WAREHOUSE_RETENTION_DAYS`): what it dropped as older is
   * not missing from it.
   */
  warehouseCutoff?: Date;
}

export interface Plan {
  emit: Emission[];
  /** Missing, but waiting: behind a busy queue, or backing off after earlier re-emissions. */
  waiting: number;
  /** Missing objects by reason (emitted or waiting). */
  missing: Partial<Record<Reason, number>>;
  state: ReconcilerState;
}

/**
 * Compares the stages and decides which events to emit again.
 *
 * Level-triggered: the result depends only on what exists now (and the backoff state), never on which
 * messages were sent before, so running it twice, or after any crash, is safe. Every stage is
 * idempotent, so an event emitted for work that was in fact still queued costs a duplicate check.
 */
export function planReemissions(inv: Inventory, state: ReconcilerState, options: PlanOptions): Plan {
  const now = options.now.getTime();
  const settled = (o: ListedObject) => now - o.lastModified.getTime() >= options.graceSeconds * 1000;
  const found: Emission[] = [];

  // Raw objects without a manifest of their current version → etl. Versions are compared by ETag, not
  // by time: the same bytes uploaded again are the same version (the ETL skips them), and a manifest
  // can be written after a newer version arrived.
  for (const raw of inv.raw) {
    if (!settled(raw)) continue;
    const manifest = inv.manifests.get(manifestKeyOf(inv.rawBucket, raw.key));
    if (!manifest) found.push({ bucket: 'raw', object: raw, reason: 'no-manifest' });
    else if (sourceETagOf(inv, manifest) !== raw.eTag)
      found.push({ bucket: 'raw', object: raw, reason: 'stale-manifest' });
  }

  const cutoff = options.warehouseCutoff?.getTime();
  // Past the warehouse's retention: a data object whose partition ends before the cutoff (every object
  // of a file the warehouse dropped is: its month is no later than the file's newest row's), a manifest
  // whose file's data does.
  const past = (end: number | undefined) => cutoff !== undefined && end !== undefined && end <= cutoff;
  const pastRetention = (key: string) => {
    const p = parseDataKey(key)?.partition;
    return past(p && partitionEnd(p));
  };

  // Normalized objects → enriched, and every enriched version → the warehouse ledger.
  for (const normalized of inv.normalized) {
    if (!settled(normalized)) continue;
    const enriched = inv.enriched.get(enrichedKey(normalized.key));
    if (!enriched || enriched.lastModified < normalized.lastModified) {
      found.push({ bucket: 'lake', object: normalized, reason: 'not-enriched' });
    } else if (
      inv.ledger &&
      settled(enriched) &&
      inv.ledger.get(enriched.key)?.eTag !== enriched.eTag &&
      !pastRetention(enriched.key)
    ) {
      // Enrich sends the warehouse message: emitting the normalized object again re-sends it.
      found.push({ bucket: 'lake', object: normalized, reason: 'enriched-not-loaded' });
    }
  }

  // Every manifest version → the warehouse (file accounting and rejects), through enrich.
  for (const manifest of inv.manifests.values()) {
    const expired = past(inv.manifestDataEnd?.get(manifest.key));
    if (inv.ledger && settled(manifest) && inv.ledger.get(manifest.key)?.eTag !== manifest.eTag && !expired) {
      found.push({ bucket: 'lake', object: manifest, reason: 'manifest-not-loaded' });
    }
  }

  const next: ReconcilerState = { version: 1, pending: {} };
  const emit: Emission[] = [];
  const missing: Plan['missing'] = {};
  let waiting = 0;
  // Backoff steps start at a minute even with no grace period.
  const step = Math.max(options.graceSeconds, 60);
  for (const e of found) {
    missing[e.reason] = (missing[e.reason] ?? 0) + 1;
    const id = pendingId(e);
    const entry = state.pending[id] ?? { missingSince: options.now.toISOString(), attempts: 0 };
    const since = Date.parse(entry.lastEmittedAt ?? entry.missingSince);
    const backoff =
      entry.attempts === 0 ? 0 : Math.min(step * 2 ** entry.attempts, options.maxBackoffSeconds) * 1000;
    const busy = WAITS_IN[e.reason].some((q) => options.busyQueues.has(q));
    if (now - since < backoff || (busy && now - since < options.maxDeferSeconds * 1000)) {
      next.pending[id] = entry;
      waiting++;
      continue;
    }
    emit.push(e);
    next.pending[id] = { ...entry, attempts: entry.attempts + 1, lastEmittedAt: options.now.toISOString() };
  }
  return { emit, waiting, missing, state: next };
}
