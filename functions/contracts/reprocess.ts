import { randomBytes } from 'node:crypto';
import { z } from 'zod';

/**
 * A reprocess run (`telemetry-pipeline reprocess`): an operator asks for objects to go through a stage
 * again although that stage has done them — after a parsing rule was fixed (etl), the device registry or
 * error-code catalogue changed (enrich), or to reload what the lake holds (warehouse).
 *
 * The marker travels as a top-level `reprocess` member of the message a stage already takes: beside
 * `Records` in an S3 notification (etl, enrich) — S3 and MinIO never send it, and their notifications
 * parse as before — and in a warehouse message. A stage that meets it does the work even where it
 * would skip it as done: the ETL although the manifest records that ETag, the warehouse although the
 * ledger holds that (lake key, ETag). The run's id is then recorded with what the run made — the
 * manifest's `reprocess`, the lake objects' `reprocess-id` metadata — so that a redelivery of the same
 * message is recognised, and `reprocess --wait` can tell when each object went through.
 */
export const reprocessSchema = z
  .object({
    /** Names the run: `rp-<yyyymmddThhmmss>-<hex>`, or any id of the same alphabet. */
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/, 'letters, digits, . _ -, at most 80'),
    requestedAt: z.iso.datetime(),
  })
  .strict();

export type Reprocess = z.infer<typeof reprocessSchema>;

/** Where a reprocess run starts: the stage that is run again; every later stage follows as usual. */
export const REPROCESS_STEPS = ['etl', 'enrich', 'warehouse'] as const;
export type ReprocessStep = (typeof REPROCESS_STEPS)[number];

/** A new run: `rp-20260301T101502-3f9a1c`. */
export function newReprocess(now: Date = new Date()): Reprocess {
  const stamp = now.toISOString().slice(0, 19).replace(/[-:]/g, '');
  return { id: `rp-${stamp}-${randomBytes(3).toString('hex')}`, requestedAt: now.toISOString() };
}
