import { z } from 'zod';

/**
 * Where a lake object came from, carried as S3 user metadata on every normalized and enriched object
 * (S3 metadata is ASCII: the raw key travels URI-encoded). The names are declared here only; a stage
 * writes `toMetadata(…)` and reads `fromMetadata(…)`, never the strings.
 */
export interface Provenance {
  sourceBucket: string;
  sourceKey: string;
  sourceETag: string;
  /** When the raw object was created (ISO 8601): the start of the end-to-end lag. */
  sourceCreatedAt: string;
  /** ETag of the normalized object an enriched one was made from. */
  normalizedETag?: string;
  /**
   * The reprocess run (contracts/reprocess.ts) that made this object: set by the ETL for the run it
   * did, carried on by the enrichment, or set by an enrichment run again (`reprocess --step enrich`).
   */
  reprocessId?: string;
}

const NAMES = {
  sourceBucket: 'source-bucket',
  sourceKey: 'source-key',
  sourceETag: 'source-etag',
  sourceCreatedAt: 'source-created-at',
  normalizedETag: 'normalized-etag',
  reprocessId: 'reprocess-id',
} as const satisfies Record<keyof Provenance, string>;

const metadataSchema = z.object({
  [NAMES.sourceBucket]: z.string().min(1),
  [NAMES.sourceKey]: z.string().min(1),
  [NAMES.sourceETag]: z.string().min(1),
  [NAMES.sourceCreatedAt]: z.iso.datetime(),
  [NAMES.normalizedETag]: z.string().min(1).optional(),
  [NAMES.reprocessId]: z.string().min(1).optional(),
});

export function toMetadata(p: Provenance): Record<string, string> {
  return {
    [NAMES.sourceBucket]: p.sourceBucket,
    [NAMES.sourceKey]: encodeURIComponent(p.sourceKey),
    [NAMES.sourceETag]: p.sourceETag,
    [NAMES.sourceCreatedAt]: p.sourceCreatedAt,
    ...(p.normalizedETag ? { [NAMES.normalizedETag]: p.normalizedETag } : {}),
    ...(p.reprocessId ? { [NAMES.reprocessId]: p.reprocessId } : {}),
  };
}

/** The provenance in an object's metadata; the error names the missing or malformed entries. */
export function fromMetadata(metadata: Record<string, string | undefined>): Provenance {
  const parsed = metadataSchema.safeParse(metadata);
  if (!parsed.success) {
    throw new Error(
      `object metadata has no valid provenance: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  const m = parsed.data;
  return {
    sourceBucket: m[NAMES.sourceBucket],
    sourceKey: decodeURIComponent(m[NAMES.sourceKey]),
    sourceETag: m[NAMES.sourceETag],
    sourceCreatedAt: m[NAMES.sourceCreatedAt],
    ...(m[NAMES.normalizedETag] ? { normalizedETag: m[NAMES.normalizedETag] } : {}),
    ...(m[NAMES.reprocessId] ? { reprocessId: m[NAMES.reprocessId] } : {}),
  };
}
