import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import Table from 'cli-table3';
import { z } from 'zod';
import type { Emission } from '../functions/reconcile/plan.js';
import type { ReconcileDeps } from '../functions/reconcile/reconcile.js';
import type { QueueName } from '../topology/topology.js';
import { formatBytes, formatDuration } from './cli-format.js';
import { localSettings } from './settings.js';
import type { Target } from './target.js';

/**
 * `telemetry-pipeline status`: where every raw file is, stage by stage, from what exists — the same
 * inventory and comparison the reconciler makes (`functions/reconcile/`: raw objects ↔ manifests ↔
 * normalized ↔ enriched ↔ the warehouse ledger), with no grace period, so a file uploaded a second ago
 * shows as in flight — plus the queues, the reconciler's last run and the warehouse files. Read-only.
 */

export const STAGES = ['etl', 'enrich', 'warehouse'] as const;
type Stage = (typeof STAGES)[number];

/** The queue whose messages feed a stage row (raw: the fetch queue, whose function writes raw). */
const STAGE_QUEUE: Record<'raw' | Stage, QueueName> = {
  raw: 'fetch',
  etl: 'etl',
  enrich: 'enrich',
  warehouse: 'warehouse',
};

/** The stage whose output an object misses, by the reconciler's reason. */
const STAGE_OF: Record<Emission['reason'], Stage> = {
  'no-manifest': 'etl',
  'stale-manifest': 'etl',
  'not-enriched': 'enrich',
  'enriched-not-loaded': 'warehouse',
  'manifest-not-loaded': 'warehouse',
};

export interface QueueStatus {
  queue: QueueName;
  waiting: number;
  inFlight: number;
  delayed: number;
  dlq: number;
}

export interface StageStatus {
  /** Raw files past this stage (raw: objects in the bucket). */
  done: number;
  /** Quarantined whole by the ETL, or missing this stage's output after the reconciler sent them again. */
  failed: number;
  /** Of `failed`, quarantined whole (etl only). */
  quarantined?: number;
  /** Waiting for this stage (its event not yet processed). */
  inFlight: number;
  queue: QueueStatus;
}

export interface StatusReport {
  generatedAt: string;
  target: string;
  factory: string | null;
  raw: {
    bucket: string;
    objects: number;
    bytes: number;
    /** Raw objects without a manifest of their current version. */
    unprocessed: number;
    oldestUnprocessed: {
      key: string;
      eTag: string;
      lastModified: string;
      ageSeconds: number;
      reason: 'no-manifest' | 'stale-manifest';
      /** Times the reconciler has sent its event again. */
      reemitted: number;
    } | null;
    queue: QueueStatus;
  };
  stages: Record<Stage, StageStatus>;
  /** Lake objects missing a stage that belong to no current raw object (e.g. its raw object was deleted). */
  unattributed: number;
  reconciler: {
    lastRun: {
      at: string;
      ageSeconds: number;
      reemitted: Record<string, number>;
      missing: Record<string, number>;
      waiting: number;
    } | null;
    /** Object versions it is tracking as missing, and of those the ones it has re-emitted. */
    pending: number;
    retried: number;
    maxAttempts: number;
  };
  warehouse: {
    generation: number;
    baseKey: string;
    bytes: { delta: number; base: number; total: number };
    updatedAt: string;
    ageSeconds: number;
    files: { total: number; complete: number; incomplete: number; quarantined: number; withRejects: number };
    rows: number;
  } | null;
  /** The ledger could not be read (an earlier release's single warehouse file): warehouse checks wait. */
  ledgerUnreadable: boolean;
}

const lastRunSchema = z.object({
  at: z.string(),
  reemitted: z.record(z.string(), z.number()).default({}),
  missing: z.record(z.string(), z.number()).default({}),
  waiting: z.number().default(0),
});

async function queueStatus(target: Target, queue: QueueName): Promise<QueueStatus> {
  const { queueCounts } = await import('../functions/core/sqs.js');
  const [q, d] = await Promise.all([
    queueCounts(target.queueUrls[queue]),
    queueCounts(target.dlqUrls[queue]),
  ]);
  return { queue, ...q, dlq: d.waiting + d.inFlight + d.delayed };
}

/**
 * Collects the status of the target (its environment already exported by `resolveTarget`, so the
 * functions' modules act on it), for one factory or all.
 */
export async function collectStatus(
  target: Target,
  opts: { factory?: string; now?: Date } = {},
): Promise<StatusReport> {
  const { takeInventory } = await import('../functions/reconcile/reconcile.js');
  const { planReemissions, emptyState, pendingId, reconcilerStateSchema } = await import(
    '../functions/reconcile/plan.js'
  );
  const keys = await import('../functions/contracts/keys.js');
  const { warehouseCutoff } = await import('../functions/contracts/manifest.js');
  const { getJson, headObject, listObjects } = await import('../functions/core/s3.js');
  const { WarehouseReader } = await import('../functions/warehouse/query.js');

  const now = opts.now ?? new Date();
  const factory = opts.factory;
  const { raw: rawBucket, lake, warehouse: warehouseBucket } = target.buckets;
  // Copies of the warehouse files, cached by ETag between runs (one folder per warehouse bucket).
  const dir = join(localSettings().PIPELINE_DATA, 'status-cache', warehouseBucket);
  await mkdir(dir, { recursive: true });
  const reader = new WarehouseReader(warehouseBucket, dir);
  try {
    // What belongs to the factory asked for: raw keys accounted to it, lake objects under its partition.
    const lakeFactory = (key: string): string | undefined =>
      keys.parseDataKey(key)?.factory ??
      keys.parseManifestKey(key)?.factory ??
      /^quarantine\/files\/factory=([^/]+)\//.exec(key)?.[1];
    const wanted = (bucket: string, key: string) =>
      !factory ||
      (bucket === rawBucket ? keys.accountingFactory(key) === factory : lakeFactory(key) === factory);
    const list: ReconcileDeps['list'] = async function* (bucket, prefix) {
      // A factory's raw objects are under `<factory>/` (unless it is `unassigned`: keys of any shape).
      const narrowed =
        factory && bucket === rawBucket && prefix === '' && factory !== 'unassigned' ? `${factory}/` : prefix;
      for await (const o of listObjects(bucket, narrowed)) if (wanted(bucket, o.key)) yield o;
    };
    const readOnly = () => {
      throw new Error('status is read-only');
    };
    const deps: ReconcileDeps = {
      buckets: { raw: rawBucket, lake },
      region: target.region,
      list,
      getJson,
      head: headObject,
      putJson: readOnly,
      send: readOnly,
      queueDepth: readOnly,
      // As the reconcile function reads it: no warehouse yet means nothing loaded — unless an earlier
      // release's single file is there (then the ledger checks wait, as the reconciler's do).
      ledger: async () =>
        (await reader.ledger()) ??
        ((await headObject(warehouseBucket, keys.LEGACY_KEY)) ? undefined : new Map()),
      graceSeconds: 0,
      maxBackoffSeconds: 0,
      maxDeferSeconds: 0,
    };
    const queueNames = Object.keys(STAGE_QUEUE) as (keyof typeof STAGE_QUEUE)[];
    const [inventory, stateJson, quarantined, queues, warehouse] = await Promise.all([
      takeInventory(deps),
      getJson(lake, keys.RECONCILER_STATE_KEY),
      (async () => {
        const ids = new Set<string>();
        for await (const o of list(lake, `${keys.QUARANTINE_PREFIX}files/`))
          ids.add(o.key.slice(o.key.lastIndexOf('/') + 1).replace(/\.json$/, ''));
        return ids;
      })(),
      Promise.all(queueNames.map((s) => queueStatus(target, STAGE_QUEUE[s]))),
      warehouseStatus(),
    ]);
    const queueOf = (s: keyof typeof STAGE_QUEUE) => queues[queueNames.indexOf(s)]!;

    // Every object missing a stage, whatever its age and backoff: the plan without grace or deferral.
    const plan = planReemissions(inventory, emptyState(), {
      now,
      graceSeconds: 0,
      maxBackoffSeconds: 0,
      maxDeferSeconds: 0,
      busyQueues: new Set(),
      // As the reconciler: what the warehouse dropped as past its retention is not missing from it.
      warehouseCutoff: warehouseCutoff(target.warehouseRetentionDays, now),
    });
    const parsedState = reconcilerStateSchema.safeParse(stateJson);
    const state = parsedState.success ? parsedState.data : emptyState();
    const attemptsOf = (e: Emission) => state.pending[pendingId(e)]?.attempts ?? 0;

    // Each missing object is attributed to its raw file: lake data is named by the raw version's id
    // (`<id>`, `<id>-<batch>`, `<id>_<n>`), manifests by the raw key.
    const rawById = new Map(inventory.raw.map((r) => [keys.objectId(rawBucket, r.key, r.eTag), r]));
    const rawByManifest = new Map(inventory.raw.map((r) => [keys.manifestKeyOf(rawBucket, r.key), r]));
    const ID_LENGTH = keys.objectId('', '', '').length;
    const rawOf = (e: Emission) => {
      if (e.bucket === 'raw') return e.object;
      const data = keys.parseDataKey(e.object.key);
      if (data) return rawById.get(data.name.slice(0, ID_LENGTH));
      return rawByManifest.get(e.object.key);
    };
    /** Per raw key: the first stage it misses, and whether that stage already failed once. */
    const position = new Map<string, { stage: Stage; failing: boolean; emission: Emission }>();
    let unattributed = 0;
    for (const e of plan.emit) {
      const r = rawOf(e);
      if (!r) {
        unattributed++;
        continue;
      }
      const stage = STAGE_OF[e.reason];
      const failing = attemptsOf(e) > 0;
      const seen = position.get(r.key);
      const order = (s: Stage) => STAGES.indexOf(s);
      if (!seen || order(stage) < order(seen.stage)) position.set(r.key, { stage, failing, emission: e });
      else if (seen.stage === stage && failing) seen.failing = true;
    }

    const stages = Object.fromEntries(
      STAGES.map((s) => [s, { done: 0, failed: 0, inFlight: 0, queue: queueOf(s) }]),
    ) as Record<Stage, StageStatus>;
    stages.etl.quarantined = 0;
    let oldest: { r: (typeof inventory.raw)[number]; e: Emission } | undefined;
    let unprocessed = 0;
    for (const r of inventory.raw) {
      const at = position.get(r.key);
      // Quarantined whole (its manifest and record written): the end of its road, whatever the warehouse
      // has of its manifest yet.
      if (at?.stage !== 'etl' && quarantined.has(keys.objectId(rawBucket, r.key, r.eTag))) {
        stages.etl.failed++;
        stages.etl.quarantined++;
        continue;
      }
      const reached = at ? STAGES.indexOf(at.stage) : STAGES.length;
      STAGES.forEach((s, i) => {
        if (i < reached) stages[s].done++;
        else if (i === reached) stages[s][at!.failing ? 'failed' : 'inFlight']++;
      });
      if (at?.stage === 'etl') {
        unprocessed++;
        if (!oldest || r.lastModified < oldest.r.lastModified) oldest = { r, e: at.emission };
      }
    }

    const lastRun = lastRunSchema.safeParse((stateJson as { lastRun?: unknown } | undefined)?.lastRun);
    const entries = Object.values(state.pending);
    return {
      generatedAt: now.toISOString(),
      target: target.label,
      factory: factory ?? null,
      raw: {
        bucket: rawBucket,
        objects: inventory.raw.length,
        bytes: inventory.raw.reduce((n, r) => n + r.size, 0),
        unprocessed,
        oldestUnprocessed: oldest
          ? {
              key: oldest.r.key,
              eTag: oldest.r.eTag,
              lastModified: oldest.r.lastModified.toISOString(),
              ageSeconds: (now.getTime() - oldest.r.lastModified.getTime()) / 1000,
              reason: oldest.e.reason as 'no-manifest' | 'stale-manifest',
              reemitted: attemptsOf(oldest.e),
            }
          : null,
        queue: queueOf('raw'),
      },
      stages,
      unattributed,
      reconciler: {
        lastRun: lastRun.success
          ? {
              ...lastRun.data,
              ageSeconds: (now.getTime() - Date.parse(lastRun.data.at)) / 1000,
            }
          : null,
        pending: entries.length,
        retried: entries.filter((p) => p.attempts > 0).length,
        maxAttempts: Math.max(0, ...entries.map((p) => p.attempts)),
      },
      warehouse,
      ledgerUnreadable: inventory.ledger === undefined,
    };
  } finally {
    await reader.close();
  }

  async function warehouseStatus(): Promise<StatusReport['warehouse']> {
    const delta = await headObject(warehouseBucket, keys.DELTA_KEY);
    if (!delta) return null;
    const meta = await reader.query('SELECT generation, base_key FROM main.warehouse_meta');
    const files = await reader.query(
      `SELECT count(*) AS total,
         count(*) FILTER (WHERE status = 'loaded' AND complete) AS complete,
         count(*) FILTER (WHERE status = 'loaded' AND NOT complete) AS incomplete,
         count(*) FILTER (WHERE status = 'quarantined') AS quarantined,
         count(*) FILTER (WHERE lines_rejected > 0) AS with_rejects,
         coalesce(sum(rows_loaded), 0) AS rows
       FROM pipeline_files WHERE $factory IS NULL OR factory = $factory`,
      { factory: factory ?? null },
    );
    const m = meta?.rows[0];
    const f = files?.rows[0] ?? {};
    const baseKey = String(m?.base_key ?? '');
    const base = baseKey ? await headObject(warehouseBucket, baseKey) : undefined;
    const num = (v: unknown) => Number(v ?? 0);
    return {
      generation: num(m?.generation),
      baseKey,
      bytes: { delta: delta.size, base: base?.size ?? 0, total: delta.size + (base?.size ?? 0) },
      updatedAt: delta.lastModified.toISOString(),
      ageSeconds: (now.getTime() - delta.lastModified.getTime()) / 1000,
      files: {
        total: num(f.total),
        complete: num(f.complete),
        incomplete: num(f.incomplete),
        quarantined: num(f.quarantined),
        withRejects: num(f.with_rejects),
      },
      rows: num(f.rows),
    };
  }
}

/** The report as a compact table and a few lines. */
export function formatStatus(s: StatusReport): string {
  const queue = (q: QueueStatus) =>
    `${q.waiting} waiting, ${q.inFlight} in flight${q.delayed ? `, ${q.delayed} delayed` : ''}`;
  const dlq = (q: QueueStatus) => (q.dlq > 0 ? `${q.dlq} ⚠` : '0');
  const table = new Table({
    head: ['stage', 'done', 'failed', 'in flight', 'queue', 'DLQ'],
    style: { head: [], border: [] },
    // No rule between rows: a compact block.
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
    colAligns: ['left', 'right', 'right', 'right', 'left', 'right'],
  });
  table.push([
    'raw',
    `${s.raw.objects} (${formatBytes(s.raw.bytes)})`,
    '',
    '',
    `fetch: ${queue(s.raw.queue)}`,
    dlq(s.raw.queue),
  ]);
  for (const name of STAGES) {
    const st = s.stages[name];
    const failed = st.quarantined ? `${st.failed} (${st.quarantined} quarantined)` : String(st.failed);
    table.push([name, st.done, failed, st.inFlight, `${st.queue.queue}: ${queue(st.queue)}`, dlq(st.queue)]);
  }
  const lines = [
    `${s.target}${s.factory ? `, factory ${s.factory}` : ''} — files per stage at ${s.generatedAt}`,
    table.toString(),
  ];
  const o = s.raw.oldestUnprocessed;
  lines.push(
    o
      ? `Unprocessed raw objects: ${s.raw.unprocessed}; oldest s3://${s.raw.bucket}/${o.key}, ${formatDuration(o.ageSeconds)} old (${o.reason === 'no-manifest' ? 'no manifest' : 'its manifest is of an earlier version'}${o.reemitted ? `; re-emitted ${o.reemitted}×` : ''})`
      : 'Unprocessed raw objects: none',
  );
  if (s.unattributed > 0)
    lines.push(`Lake objects missing a stage with no current raw object: ${s.unattributed}`);
  const r = s.reconciler.lastRun;
  if (r) {
    const list = (m: Record<string, number>) =>
      Object.entries(m)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ');
    lines.push(
      `Reconciler: last run ${r.at} (${formatDuration(r.ageSeconds)} ago): re-emitted ${list(r.reemitted) || 'nothing'}` +
        `${Object.keys(r.missing).length ? `; missing ${list(r.missing)}` : ''}${r.waiting ? `; ${r.waiting} waiting` : ''}` +
        `${s.reconciler.retried ? `; ${s.reconciler.retried} object(s) still missing after a re-emission (up to ${s.reconciler.maxAttempts}×)` : ''}`,
    );
  } else {
    lines.push('Reconciler: no run recorded yet');
  }
  const w = s.warehouse;
  if (w) {
    lines.push(
      `Warehouse: generation ${w.generation}, ${formatBytes(w.bytes.total)} (delta ${formatBytes(w.bytes.delta)} + base ${formatBytes(w.bytes.base)}), updated ${w.updatedAt} (${formatDuration(w.ageSeconds)} ago)`,
      `  ${w.files.total} file(s): ${w.files.complete} complete, ${w.files.incomplete} incomplete, ${w.files.quarantined} quarantined, ${w.files.withRejects} with rejected lines; ${w.rows} rows`,
    );
  } else {
    lines.push('Warehouse: none yet (no file loaded)');
  }
  if (s.ledgerUnreadable)
    lines.push(
      '  (the ledger of an earlier release is not readable yet: warehouse counts wait for its next batch)',
    );
  return `${lines.join('\n')}\n`;
}

/** `telemetry-pipeline status [--factory <id>] [--json]`. */
export async function runStatus(target: Target, opts: { factory?: string; json?: boolean }): Promise<string> {
  const report = await collectStatus(target, { factory: opts.factory });
  return opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report);
}
