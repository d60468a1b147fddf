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

/** The normalized data objects a manifest's run made (its other outputs are rejects). */
export function normalizedOutputs(m: Pick<Manifest, 'outputs'>): string[] {
  return m.outputs.filter((k) => k.startsWith(NORMALIZED_PREFIX));
}

/** The enriched objects a manifest's run leads to: one per normalized output, under the same name. */
export function enrichedOutputs(m: Pick<Manifest, 'outputs'>): string[] {
  return normalizedOutputs(m).map((k) => enrichedKey(k));
}
