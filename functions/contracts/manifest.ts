import { z } from 'zod';
import { enrichedKey, NORMALIZED_PREFIX } from './keys.js';
import { reprocessSchema } from './reprocess.js';

/** The per-file record the ETL writes last: the proof a file was processed, and its accounting. */
export const manifestSchema = z.object({
  id: z.string(),
  status: z.enum(['loaded', 'quarantined']),
  source: z.object({
    bucket: z.string(),
    key: z.string(),
    eTag: z.string(),
    size: z.number(),
    createdAt: z.string(),
  }),
  factory: z.string(),
  format: z.string().optional(),
  table: z.string().optional(),
  detected: z.boolean().optional(),
  gzip: z.boolean(),
  lines: z.object({
    total: z.number(),
    loaded: z.number(),
    rejected: z.number(),
    blank: z.number(),
    header: z.number(),
  }),
  rows: z.object({ readings: z.number(), events: z.number() }),
  rejectReasons: z.record(z.string(), z.number()),
  quarantine: z.object({ code: z.string(), reason: z.string() }).optional(),
  outputs: z.array(z.string()),
  bytes: z.number(),
  seconds: z.number(),
  startedAt: z.string(),
  finishedAt: z.string(),
  minTs: z.string().optional(),
  maxTs: z.string().optional(),
  /** Records that spanned more than one line. */
  multilineRecords: z.number().optional(),
  /** `cr`: the file's lines end in a lone carriage return. */
  lineEndings: z.literal('cr').optional(),
  /** Things the file's owner should look at, e.g. a reject ratio over `limits.maxRejectRatio`. */
  warnings: z.array(z.string()).optional(),
  /** The reprocess run this manifest's processing was part of (`telemetry-pipeline reprocess`). */
  reprocess: reprocessSchema.optional(),
});

export type Manifest = z.infer<typeof manifestSchema>;

/**
 * The warehouse keeps files whose data is newer than its retention (`WAREHOUSE_RETENTION_DAYS`): the
 * cutoff `days` before `now`, or none.
 */
export function warehouseCutoff(days: number | undefined, now = new Date()): Date | undefined {
  return days ? new Date(now.getTime() - days * 86_400_000) : undefined;
}

/** What the warehouse's retention reads of a manifest. */
type DataTimes = Pick<Manifest, 'maxTs'> & { source: Pick<Manifest['source'], 'createdAt'> };

/**
 * When a file's data ends for the warehouse's retention: the end of the UTC month its newest row is in
 * (the manifest's `maxTs`; a file without rows, its raw object's time). Retention goes by whole months,
 * as the lake's partitions do, so that every enriched object of a dropped file is in a month past the
 * cutoff too (the reconciler judges those by their partition: `partitionEnd`).
 */
export function dataEnd(m: DataTimes): number {
  const t = new Date(m.maxTs ?? m.source.createdAt);
  return Date.UTC(t.getUTCFullYear(), t.getUTCMonth() + 1, 1);
}

/**
 * A file past the warehouse's retention: the month of its newest row ended before the cutoff. The lake
 * keeps it; the warehouse drops it at compaction and neither loads it again nor has it sent again.
 */
export function pastWarehouseRetention(m: DataTimes, cutoff: Date | undefined): boolean {
  return cutoff !== undefined && dataEnd(m) <= cutoff.getTime();
}

/** The normalized data objects a manifest's run made (its other outputs are rejects). */
export function normalizedOutputs(m: Pick<Manifest, 'outputs'>): string[] {
  return m.outputs.filter((k) => k.startsWith(NORMALIZED_PREFIX));
}

/** The enriched objects a manifest's run leads to: one per normalized output, under the same name. */
export function enrichedOutputs(m: Pick<Manifest, 'outputs'>): string[] {
  return normalizedOutputs(m).map((k) => enrichedKey(k));
}
