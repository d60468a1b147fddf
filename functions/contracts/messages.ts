import { createHash } from 'node:crypto';
import { z } from 'zod';
import { reprocessSchema } from './reprocess.js';
import { DATA_TABLES } from './tables.js';

/**
 * One raw file, enriched: its ETL manifest, whose outputs name the file's data objects (their enriched
 * keys follow from the normalized ones) and rejects. The writer loads all of them in one commit.
 * `reprocess`: the file was enriched by that run, and the writer loads its objects again although its
 * ledger holds their (key, ETag).
 */
export const warehouseFileSchema = z.object({
  bucket: z.string().min(1),
  /** The manifest's key and ETag as enrich read it (the writer reads what the lake holds now). */
  key: z.string().min(1),
  eTag: z.string().min(1),
  enrichedAt: z.iso.datetime(),
  reprocess: reprocessSchema.optional(),
});
export type WarehouseFile = z.infer<typeof warehouseFileSchema>;

/** Files per message: an enrich batch is at most 10 records (SQS), each one file. */
export const MAX_FILES_PER_MESSAGE = 100;

/**
 * What the single warehouse writer is told, through the FIFO queue:
 *
 * - `files` (what enrich sends): the raw files one enrich batch finished, one entry each.
 * - `data`, `manifest`: one enriched object, or one manifest, to load (`telemetry-pipeline reprocess
 *   --step warehouse` sends these, marked with `reprocess`, as did enrich before it sent `files`; they
 *   are still loaded, so messages queued by an earlier release are not lost).
 */
export const warehouseMessageSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('files'),
    files: z.array(warehouseFileSchema).min(1).max(MAX_FILES_PER_MESSAGE),
  }),
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

/** The deduplication id of any warehouse message: every (key, ETag) it names, and its triggers. */
export function messageDeduplicationId(message: WarehouseMessage, triggers: readonly string[]): string {
  const named = message.kind === 'files' ? message.files : [message];
  return deduplicationId(
    named.map((f) => f.key).join('\u0001'),
    named.map((f) => f.eTag).join('\u0001'),
    triggers.join('\u0001'),
  );
}
