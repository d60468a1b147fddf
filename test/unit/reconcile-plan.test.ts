import { describe, expect, it } from 'vitest';
import { enrichedKey, manifestKeyOf } from '../../functions/contracts/keys.js';
import { dataEnd } from '../../functions/contracts/manifest.js';
import type { ListedObject } from '../../functions/core/s3.js';
import {
  emptyState,
  type Inventory,
  type PlanOptions,
  planReemissions,
  type ReconcilerState,
} from '../../functions/reconcile/plan.js';

const NOW = new Date('2026-11-25T12:00:00Z');
const options: PlanOptions = {
  now: NOW,
  graceSeconds: 60,
  maxBackoffSeconds: 3600,
  busyQueues: new Set(),
  maxDeferSeconds: 600,
};

/** An object last modified `ago` seconds before NOW. */
const obj = (key: string, ago: number, eTag = `e-${key}`): ListedObject => ({
  key,
  eTag,
  size: 10,
  lastModified: new Date(NOW.getTime() - ago * 1000),
});

const RAW = 'demo/2026/11/25/a.jsonl';
const NORM = 'normalized/readings/factory=demo/date=2026-11-25/abc.parquet';

/** A file that went all the way: raw → manifest → normalized → enriched → ledger. */
function complete(): Inventory {
  const manifest = obj(manifestKeyOf('raw', RAW), 500);
  const normalized = obj(NORM, 550);
  const enriched = obj(enrichedKey(NORM), 400);
  return {
    rawBucket: 'raw',
    raw: [obj(RAW, 600, 'raw-v1')],
    manifests: new Map([[manifest.key, manifest]]),
    normalized: [normalized],
    enriched: new Map([[enriched.key, enriched]]),
    ledger: new Map([
      [manifest.key, { eTag: manifest.eTag, sourceETag: 'raw-v1' }],
      [enriched.key, { eTag: enriched.eTag, sourceETag: 'raw-v1' }],
    ]),
    manifestSources: new Map(),
  };
}

/** The ledger of an inventory made by `complete()`. */
const ledgerOf = (inv: Inventory) => inv.ledger!;

const reasons = (plan: ReturnType<typeof planReemissions>) =>
  plan.emit.map((e) => `${e.bucket}:${e.object.key}:${e.reason}`);

describe('planReemissions', () => {
  it('does not send the warehouse what it dropped as past its retention, and sends what is within', () => {
    const inv = complete();
    const manifest = [...inv.manifests.values()][0]!;
    const enriched = [...inv.enriched.values()][0]!;
    // Neither the manifest nor the enriched object is in the ledger (dropped at a compaction).
    inv.ledger = new Map();
    inv.manifestSources.set(manifest.key, 'raw-v1');
    // The file's newest row is of November 25: for retention, its data ends with November.
    inv.manifestDataEnd = new Map([
      [manifest.key, dataEnd({ maxTs: '2026-11-25T12:00:00.000Z', source: { createdAt: '' } })],
    ]);
    const missing = [`lake:${manifest.key}:manifest-not-loaded`, `lake:${NORM}:enriched-not-loaded`].sort();
    // Past a cutoff of December 2 (its object's partition, November 25, too) …
    const past = planReemissions(inv, emptyState(), {
      ...options,
      warehouseCutoff: new Date('2026-12-02T00:00:00Z'),
    });
    expect(past.emit).toEqual([]);
    // … within one of November 20, or with no retention …
    const within = planReemissions(inv, emptyState(), {
      ...options,
      warehouseCutoff: new Date('2026-11-20T00:00:00Z'),
    });
    expect(reasons(within).sort()).toEqual(missing);
    expect(reasons(planReemissions(inv, emptyState(), options)).sort()).toEqual(missing);
    expect(enriched.key).toContain('date=2026-11-25');
    // … and on November 27 the file is within (its month has not ended), so its manifest is sent.
    const midMonth = planReemissions(inv, emptyState(), {
      ...options,
      warehouseCutoff: new Date('2026-11-27T00:00:00Z'),
    });
    expect(reasons(midMonth)).toEqual([`lake:${manifest.key}:manifest-not-loaded`]);
  });

  it('emits nothing for a file that reached every stage', async () => {
    const plan = planReemissions(complete(), emptyState(), options);
    expect(plan.emit).toEqual([]);
    expect(plan.missing).toEqual({});
  });

  it.each([
    [
      'no manifest → the raw object to etl',
      (inv: Inventory) => inv.manifests.clear(),
      [`raw:${RAW}:no-manifest`],
    ],
    [
      'no enriched object → the normalized one to enrich',
      (inv: Inventory) => inv.enriched.clear(),
      [`lake:${NORM}:not-enriched`],
    ],
    [
      'enriched older than its normalized object (rewritten since) → enrich again',
      (inv: Inventory) => {
        inv.normalized[0] = obj(NORM, 100);
      },
      [`lake:${NORM}:not-enriched`],
    ],
    [
      'enriched but not in the ledger → the normalized object to enrich (it re-sends the load)',
      (inv: Inventory) => ledgerOf(inv).delete(enrichedKey(NORM)),
      [`lake:${NORM}:enriched-not-loaded`],
    ],
    [
      'a ledger holding another version of the enriched object',
      (inv: Inventory) => ledgerOf(inv).set(enrichedKey(NORM), { eTag: 'old', sourceETag: 'raw-v0' }),
      [`lake:${NORM}:enriched-not-loaded`],
    ],
    [
      'a manifest not in the ledger → the manifest to enrich (forwarded to the warehouse)',
      (inv: Inventory) => {
        ledgerOf(inv).delete(manifestKeyOf('raw', RAW));
        inv.manifestSources.set(manifestKeyOf('raw', RAW), 'raw-v1'); // read from the manifest
      },
      [`lake:${manifestKeyOf('raw', RAW)}:manifest-not-loaded`],
    ],
    [
      'no warehouse yet: everything loaded so far is missing there',
      (inv: Inventory) => {
        ledgerOf(inv).clear();
        inv.manifestSources.set(manifestKeyOf('raw', RAW), 'raw-v1');
      },
      [`lake:${NORM}:enriched-not-loaded`, `lake:${manifestKeyOf('raw', RAW)}:manifest-not-loaded`],
    ],
  ])('%s', async (_name, damage, expected) => {
    const inv = complete();
    damage(inv);
    expect(reasons(planReemissions(inv, emptyState(), options))).toEqual(expected);
  });

  it('leaves objects inside the grace period to their own notification', async () => {
    const inv = complete();
    inv.raw.push(obj('demo/2026/11/25/new.jsonl', 30));
    inv.manifests.clear();
    const plan = planReemissions(inv, emptyState(), options);
    expect(reasons(plan)).toEqual([`raw:${RAW}:no-manifest`]);
  });

  it('a new version of the raw object (another ETag) than its manifest records → etl', async () => {
    const inv = complete();
    inv.raw[0] = obj(RAW, 100, 'raw-v2');
    expect(reasons(planReemissions(inv, emptyState(), options))).toEqual([`raw:${RAW}:stale-manifest`]);
  });

  it('the same bytes uploaded again (newer, same ETag) are the version the manifest records', async () => {
    const inv = complete();
    inv.raw[0] = obj(RAW, 100, 'raw-v1');
    expect(planReemissions(inv, emptyState(), options).emit).toEqual([]);
  });

  it.each([
    ['records this version', 'raw-v2', []],
    [
      'records the previous one, though written after this version arrived',
      'raw-v1',
      [`raw:${RAW}:stale-manifest`],
    ],
  ])(
    'a manifest the ledger does not hold yet: its own record decides (%s)',
    async (_n, recorded, expected) => {
      const inv = complete();
      inv.raw[0] = obj(RAW, 550, 'raw-v2'); // older than the manifest (500 s ago)
      const manifestKey = manifestKeyOf('raw', RAW);
      ledgerOf(inv).delete(manifestKey);
      inv.manifestSources.set(manifestKey, recorded);
      const plan = planReemissions(inv, emptyState(), options);
      expect(reasons(plan).filter((r) => r.startsWith('raw:'))).toEqual(expected);
    },
  );

  it("an unreadable ledger (an earlier release's warehouse file, not adopted yet) holds back the warehouse checks", async () => {
    const inv = complete();
    inv.ledger = undefined;
    inv.manifestSources.set(manifestKeyOf('raw', RAW), 'raw-v1');
    expect(planReemissions(inv, emptyState(), options).emit).toEqual([]);
  });

  it('backs off exponentially for an object that stays missing, and forgets it once it is there', async () => {
    const inv = complete();
    inv.manifests.clear();
    ledgerOf(inv).delete(manifestKeyOf('raw', RAW));
    let state: ReconcilerState = emptyState();
    const at = (seconds: number) => ({ ...options, now: new Date(NOW.getTime() + seconds * 1000) });
    const emittedAt: number[] = [];
    for (let t = 0; t <= 600; t += 10) {
      const plan = planReemissions(inv, state, at(t));
      if (plan.emit.length > 0) emittedAt.push(t);
      else expect(plan.waiting).toBe(1);
      state = plan.state;
    }
    // grace 60 s: again after 120 s, then 240 s, then 480 s
    expect(emittedAt).toEqual([0, 120, 360]);
    expect(state.pending[`raw/${RAW}@raw-v1`]).toMatchObject({
      attempts: 3,
      missingSince: NOW.toISOString(),
    });

    const healed = planReemissions(complete(), state, at(610));
    expect(healed.emit).toEqual([]);
    expect(healed.state.pending).toEqual({});
  });

  it('caps the backoff', async () => {
    const inv = complete();
    inv.manifests.clear();
    ledgerOf(inv).clear();
    inv.enriched.clear();
    const state: ReconcilerState = {
      version: 1,
      pending: {
        [`raw/${RAW}@raw-v1`]: {
          missingSince: new Date(NOW.getTime() - 86400_000).toISOString(),
          attempts: 30,
          lastEmittedAt: new Date(NOW.getTime() - 3600_000).toISOString(),
        },
      },
    };
    const plan = planReemissions(inv, state, options);
    expect(reasons(plan)).toContain(`raw:${RAW}:no-manifest`);
  });

  it('defers what may be waiting in a busy queue, up to maxDeferSeconds, and only for that queue', async () => {
    const inv = complete();
    inv.manifests.clear(); // raw → etl
    inv.enriched.clear(); // normalized → enrich
    const busyEtl = { ...options, busyQueues: new Set(['etl'] as const) };
    let plan = planReemissions(inv, emptyState(), busyEtl);
    expect(reasons(plan)).toEqual([`lake:${NORM}:not-enriched`]);
    expect(plan.waiting).toBe(1);
    expect(plan.state.pending[`raw/${RAW}@raw-v1`]).toEqual({ missingSince: NOW.toISOString(), attempts: 0 });

    const later = { ...busyEtl, now: new Date(NOW.getTime() + 601_000) };
    plan = planReemissions(inv, plan.state, later);
    expect(reasons(plan)).toContain(`raw:${RAW}:no-manifest`);
  });

  it('a backlog in the warehouse queue holds back what the warehouse has not loaded yet', async () => {
    const inv = complete();
    ledgerOf(inv).clear();
    inv.manifestSources.set(manifestKeyOf('raw', RAW), 'raw-v1');
    const plan = planReemissions(inv, emptyState(), {
      ...options,
      busyQueues: new Set(['warehouse'] as const),
    });
    expect(plan.emit).toEqual([]);
    expect(plan.waiting).toBe(2);
    expect(plan.missing).toEqual({ 'enriched-not-loaded': 1, 'manifest-not-loaded': 1 });
  });
});
