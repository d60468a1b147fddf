import { createHash } from 'node:crypto';

/**
 * Where the ETL writes in the lake. Output names derive from the input object's identity, so a replay
 * of the same (bucket, key, ETag) rewrites the same objects instead of adding new ones.
 */
export function objectId(bucket: string, key: string, eTag: string): string {
  return createHash('sha256').update(`${bucket}\u0000${key}\u0000${eTag}`).digest('hex').slice(0, 24);
}

/** One manifest per source key (not per version): the next version finds and replaces the outputs. */
export function manifestKey(factory: string, bucket: string, key: string): string {
  const h = createHash('sha256').update(`${bucket}\u0000${key}`).digest('hex').slice(0, 24);
  return `manifests/factory=${factory}/${h}.json`;
}

export function normalizedKey(relativePath: string): string {
  return `normalized/${relativePath}`;
}

export function rejectsKey(relativePath: string): string {
  return `quarantine/${relativePath}`;
}

export function quarantinedFileKey(factory: string, id: string): string {
  return `quarantine/files/factory=${factory}/${id}.json`;
}
