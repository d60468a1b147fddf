import { createHash } from 'node:crypto';
import { z } from 'zod';
import { reprocessSchema } from './reprocess.js';
import { DATA_TABLES } from './tables.js';

/**
 * What the enrich function tells the single warehouse writer, through the FIFO queue: an enriched
 * object to load, or an ETL manifest (file accounting and rejects) to record. `reprocess` (sent by
 * `telemetry-pipeline reprocess --step warehouse`, never by enrich) makes the writer load the object
 * again although its ledger holds that (key, ETag).
 */
export const warehouseMessageSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('data'),
    table: z.enum(DATA_TABLES),
    bucket: z.string().min(1),
    key: z.string().min(1),
    eTag: z.string().min(1),
    /** As the sender counted them (the writer records what it inserts). */
    rows: z.number().int().min(0),
    sourceKey: z.string().min(1),
    sourceETag: z.string(),
    rawCreatedAt: z.iso.datetime(),
    enrichedAt: z.iso.datetime(),
    reprocess: reprocessSchema.optional(),
  }),
  z.object({
    kind: z.literal('manifest'),
    bucket: z.string().min(1),
    key: z.string().min(1),
    eTag: z.string().min(1),
    reprocess: reprocessSchema.optional(),
  }),
]);

export type WarehouseMessage = z.infer<typeof warehouseMessageSchema>;

/** Every warehouse message goes to one FIFO message group: one writer at a time, in order. */
export const WAREHOUSE_GROUP = 'warehouse';

/**
 * FIFO deduplication id: one lake object version, announced because of one triggering message. A
 * redelivery of that message (the same trigger) is dropped by SQS within its 5-minute window; an event
 * the reconciler sends again is a new trigger and gets through, even right after the first load
 * failed and went to the DLQ. Loading twice is harmless: the ledger loads each (key, ETag) once.
 */
export function deduplicationId(key: string, eTag: string, trigger: string): string {
  return createHash('sha256').update(`${key}\u0000${eTag}\u0000${trigger}`).digest('hex');
}
