import type { QueueName } from '../../topology/topology.js';
import {
  ENRICHED_PREFIX,
  MANIFESTS_PREFIX,
  manifestKeyOf,
  NORMALIZED_PREFIX,
  RECONCILER_STATE_KEY,
} from '../contracts/keys.js';
import { dataEnd, manifestSchema, warehouseCutoff } from '../contracts/manifest.js';
import { fromMetadata } from '../contracts/provenance.js';
import { forEachConcurrent } from '../core/concurrency.js';
import { objectCreatedMessages } from '../core/notify.js';
import type { ListedObject } from '../core/s3.js';
import {
  emptyState,
  type Inventory,
  type Plan,
  planReemissions,
  type ReconcilerState,
  reconcilerStateSchema,
} from './plan.js';

/** Where the reconciler keeps its backoff state and last report, in the lake bucket. */

/** What the reconciler reads and writes: object storage, the warehouse ledger, the stage queues. */
export interface ReconcileDeps {
  buckets: { raw: string; lake: string };
  region: string;
  list(bucket: string, prefix: string): AsyncIterable<ListedObject>;
  getJson(bucket: string, key: string): Promise<unknown>;
  /** An object's metadata (a normalized object's provenance names its raw file, hence its manifest). */
  head(bucket: string, key: string): Promise<{ metadata: Record<string, string> } | undefined>;
  putJson(bucket: string, key: string, value: unknown): Promise<unknown>;
  /** The warehouse ledger (empty before the first batch; `undefined` while it cannot be read yet). */
  ledger(): Promise<Inventory['ledger']>;
  /** Sends S3 event bodies to a stage queue. */
  send(queue: QueueName, bodies: string[]): Promise<void>;
  /** Messages in a stage queue: visible, in flight and delayed. */
  queueDepth(queue: 'etl' | 'enrich' | 'warehouse'): Promise<number>;
  graceSeconds: number;
  maxBackoffSeconds: number;
  maxDeferSeconds: number;
  /** Days of data the warehouse keeps (`WAREHOUSE_RETENTION_DAYS`): older files are not sent to it. */
  warehouseRetentionDays?: number;
  now?: () => Date;
}

export interface ReconcileReport {
  at: string;
  seconds: number;
  checked: { raw: number; manifests: number; normalized: number; enriched: number; ledger: number };
  missing: Plan['missing'];
  /** Events sent again, per queue. */
  reemitted: Partial<Record<QueueName, number>>;
  /** Missing objects left for a later run: behind a busy queue, or backing off. */
  waiting: number;
  /** Messages in the stage queues when the run began. */
  queues: Record<'etl' | 'enrich' | 'warehouse', number>;
}

async function collect(items: AsyncIterable<ListedObject>): Promise<ListedObject[]> {
  const out: ListedObject[] = [];
  for await (const o of items) out.push(o);
  return out;
}

const byKey = (objects: ListedObject[]) => new Map(objects.map((o) => [o.key, o]));

/**
 * Lists every stage (paging through any number of objects), reads the warehouse ledger, and reads the
 * manifests whose version the ledger does not hold yet (a few at a time) for the raw version they record.
 */
export async function takeInventory(deps: ReconcileDeps): Promise<Inventory> {
  const { raw, lake } = deps.buckets;
  const [rawObjects, manifests, normalized, enriched, ledger] = await Promise.all([
    collect(deps.list(raw, '')),
    collect(deps.list(lake, MANIFESTS_PREFIX)),
    collect(deps.list(lake, NORMALIZED_PREFIX)),
    collect(deps.list(lake, ENRICHED_PREFIX)),
    deps.ledger(),
  ]);
  const manifestSources = new Map<string, string>();
  const manifestDataEnd = new Map<string, number>();
  const unloaded = manifests.filter((m) => ledger?.get(m.key)?.eTag !== m.eTag);
  await forEachConcurrent(unloaded, 8, async (m) => {
    const parsed = manifestSchema.safeParse(await deps.getJson(lake, m.key));
    if (!parsed.success) return;
    manifestSources.set(m.key, parsed.data.source.eTag);
    manifestDataEnd.set(m.key, dataEnd(parsed.data));
  });
  return {
    rawBucket: raw,
    raw: rawObjects,
    manifests: byKey(manifests),
    normalized,
    enriched: byKey(enriched),
    ledger,
    manifestSources,
    manifestDataEnd,
  };
}

async function loadState(deps: ReconcileDeps): Promise<ReconcilerState> {
  const parsed = reconcilerStateSchema.safeParse(await deps.getJson(deps.buckets.lake, RECONCILER_STATE_KEY));
  return parsed.success ? parsed.data : emptyState();
}

/**
 * Enrich works per raw file, from its manifest: a normalized object missing its enriched object (or
 * whose enriched object is not loaded) is sent again as its file's manifest, found through the
 * object's provenance — once per file however many of its objects miss.
 */
async function throughManifests(
  deps: ReconcileDeps,
  inventory: Inventory,
  emissions: Plan['emit'],
): Promise<Plan['emit']> {
  const out: Plan['emit'] = [];
  const seen = new Set<string>();
  for (const e of emissions) {
    if (e.bucket === 'lake' && e.object.key.startsWith(NORMALIZED_PREFIX)) {
      const head = await deps.head(deps.buckets.lake, e.object.key);
      let manifest: ListedObject | undefined;
      try {
        const p = head && fromMetadata(head.metadata);
        manifest = p ? inventory.manifests.get(manifestKeyOf(p.sourceBucket, p.sourceKey)) : undefined;
      } catch {
        manifest = undefined;
      }
      // No provenance or no manifest: the raw ↔ manifest check sends the raw file to the ETL instead.
      if (!manifest || seen.has(manifest.key)) continue;
      seen.add(manifest.key);
      out.push({ ...e, object: manifest });
    } else if (!seen.has(e.object.key)) {
      seen.add(e.object.key);
      out.push(e);
    }
  }
  return out;
}

/**
 * One reconciliation: compare what exists at every stage (raw objects ↔ ETL manifests ↔ normalized
 * and enriched lake objects ↔ the warehouse ledger) and send again the ObjectCreated event of each
 * object whose next stage is missing, to the queue the topology routes it to — the same message S3
 * sends, so the stages cannot tell a re-emitted event from the original. Idempotent: every stage skips
 * or rewrites what it has already done.
 */
export async function reconcile(deps: ReconcileDeps): Promise<ReconcileReport> {
  const started = performance.now();
  const now = deps.now?.() ?? new Date();
  const stages = ['etl', 'enrich', 'warehouse'] as const;
  const [inventory, state, depths] = await Promise.all([
    takeInventory(deps),
    loadState(deps),
    Promise.all(stages.map((q) => deps.queueDepth(q))),
  ]);
  const plan = planReemissions(inventory, state, {
    now,
    graceSeconds: deps.graceSeconds,
    maxBackoffSeconds: deps.maxBackoffSeconds,
    maxDeferSeconds: deps.maxDeferSeconds,
    busyQueues: new Set(stages.filter((_, i) => depths[i]! > 0)),
    warehouseCutoff: warehouseCutoff(deps.warehouseRetentionDays, now),
  });
  const bodies = new Map<QueueName, string[]>();
  for (const e of await throughManifests(deps, inventory, plan.emit)) {
    const messages = objectCreatedMessages({
      bucket: e.bucket,
      physicalBucket: deps.buckets[e.bucket],
      key: e.object.key,
      size: e.object.size,
      eTag: e.object.eTag,
      eventName: 'ObjectCreated:Put',
      region: deps.region,
    });
    for (const { queue, body } of messages) {
      const list = bodies.get(queue) ?? [];
      list.push(body);
      bodies.set(queue, list);
    }
  }
  const reemitted: ReconcileReport['reemitted'] = {};
  for (const [queue, list] of bodies) {
    await deps.send(queue, list);
    reemitted[queue] = list.length;
  }
  const report: ReconcileReport = {
    at: now.toISOString(),
    seconds: (performance.now() - started) / 1000,
    checked: {
      raw: inventory.raw.length,
      manifests: inventory.manifests.size,
      normalized: inventory.normalized.length,
      enriched: inventory.enriched.size,
      ledger: inventory.ledger?.size ?? 0,
    },
    missing: plan.missing,
    reemitted,
    waiting: plan.waiting,
    queues: { etl: depths[0]!, enrich: depths[1]!, warehouse: depths[2]! },
  };
  await deps.putJson(deps.buckets.lake, RECONCILER_STATE_KEY, { ...plan.state, lastRun: report });
  return report;
}
