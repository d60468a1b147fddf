import { createHash } from 'node:crypto';

/**
 * The key layout every stage agrees on, built and parsed in one place: raw keys
 * (`<factory>/<yyyy>/<mm>/<dd>/<file>`) and the lake's prefixes. Output names derive from the input
 * object's identity, so a replay of the same (bucket, key, ETag) rewrites the same objects instead of
 * adding new ones.
 */

/** Factory ids: the first segment of raw keys and a Hive partition value, so kept to a safe alphabet. */
export const FACTORY_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** Raw keys are `<factory>/<yyyy>/<mm>/<dd>/<file>`; the factory is the first path segment. */
export function factoryOfKey(key: string): string | undefined {
  const first = key.split('/', 1)[0];
  return first && key.includes('/') ? first : undefined;
}

/** The factory a raw key is accounted under: its first segment when that is a valid id, else `unassigned`. */
export function accountingFactory(key: string): string {
  const id = factoryOfKey(key) ?? 'unassigned';
  return FACTORY_ID.test(id) ? id : 'unassigned';
}

export function objectId(bucket: string, key: string, eTag: string): string {
  return createHash('sha256').update(`${bucket}\u0000${key}\u0000${eTag}`).digest('hex').slice(0, 24);
}

/** One manifest per source key (not per version): the next version finds and replaces the outputs. */
export function manifestKey(factory: string, bucket: string, key: string): string {
  const h = createHash('sha256').update(`${bucket}\u0000${key}`).digest('hex').slice(0, 24);
  return `manifests/factory=${factory}/${h}.json`;
}

/** The manifest the ETL writes for a raw object (under the factory the key is accounted to). */
export function manifestKeyOf(rawBucket: string, rawKey: string): string {
  return manifestKey(accountingFactory(rawKey), rawBucket, rawKey);
}

export const MANIFESTS_PREFIX = 'manifests/';
export const NORMALIZED_PREFIX = 'normalized/';
export const ENRICHED_PREFIX = 'enriched/';

/** `manifests/factory=<f>/<hash>.json`: group 1 is the factory. */
export const MANIFEST_KEY = /^manifests\/factory=([^/]+)\/[^/]+\.json$/;
/** `normalized/<table>/factory=<f>/date=<d>/<name>.parquet`: groups are the table and the factory. */
export const NORMALIZED_KEY = /^normalized\/(readings|events)\/factory=([^/]+)\/date=[^/]+\/[^/]+\.parquet$/;

export function normalizedKey(relativePath: string): string {
  return `${NORMALIZED_PREFIX}${relativePath}`;
}

/** `normalized/<table>/…` → `enriched/<table>/…`: same partitions, same name. */
export function enrichedKey(normalized: string): string {
  return `${ENRICHED_PREFIX}${normalized.slice(NORMALIZED_PREFIX.length)}`;
}

export function rejectsKey(relativePath: string): string {
  return `quarantine/${relativePath}`;
}

export function quarantinedFileKey(factory: string, id: string): string {
  return `quarantine/files/factory=${factory}/${id}.json`;
}
