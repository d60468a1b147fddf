import { createHash, randomUUID } from 'node:crypto';
import { type DataTable, isDataTable } from './tables.js';

/**
 * The key layout every stage agrees on, built and parsed here and nowhere else:
 *
 * - raw bucket: `<factory>/<yyyy>/<mm>/<dd>/<file>` (any key is accepted; this is the convention);
 * - lake bucket: `normalized/<table>/factory=<f>/month=<yyyy-mm>/<stem>.parquet` (earlier releases:
 *   `date=<yyyy-mm-dd>`, still read), its enriched twin
 *   `enriched/…` under the same partitions and name, `quarantine/rejects/factory=<f>/<id>.parquet`,
 *   `quarantine/files/factory=<f>/<id>.json`, `manifests/factory=<f>/<hash>.json`, the reference data
 *   `reference/<file>`, the fetch and reconciler state;
 * - warehouse bucket: the delta file, its immutable bases, the published baselines.
 *
 * Output names derive from the input object's identity, so a replay of the same (bucket, key, ETag)
 * rewrites the same objects instead of adding new ones.
 */

/** Factory ids: the first segment of raw keys and a Hive partition value, so kept to a safe alphabet. */
export const FACTORY_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;

// ---- raw keys ----

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

/**
 * The day a raw key names (`plant/2024/12/31/x.log` → `2024-12-31`): the first `yyyy/mm/dd` run of
 * folders that is a real calendar date. Gives year-less timestamps their year.
 */
export function dateOfRawKey(key: string): string | undefined {
  const folders = key.split('/').slice(0, -1);
  for (let i = 0; i + 2 < folders.length; i++) {
    const [y, m, d] = [folders[i]!, folders[i + 1]!, folders[i + 2]!];
    if (!/^\d{4}$/.test(y) || !/^\d{2}$/.test(m) || !/^\d{2}$/.test(d)) continue;
    const date = `${y}-${m}-${d}`;
    const t = new Date(`${date}T00:00:00Z`);
    if (!Number.isNaN(t.getTime()) && t.toISOString().startsWith(date)) return date;
  }
  return undefined;
}

/** `plant/2024/01/02/press-07.csv.gz` → `press-07`: the device when a file's lines name none. */
export function deviceOfRawKey(key: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1);
  return name.replace(/(\.(gz|log|txt|csv|tsv|jsonl|json|ndjson|syslog))+$/i, '') || name;
}

export function objectId(bucket: string, key: string, eTag: string): string {
  return createHash('sha256').update(`${bucket}\u0000${key}\u0000${eTag}`).digest('hex').slice(0, 24);
}

// ---- manifests ----

export const MANIFESTS_PREFIX = 'manifests/';

/** One manifest per source key (not per version): the next version finds and replaces the outputs. */
export function manifestKey(factory: string, bucket: string, key: string): string {
  const h = createHash('sha256').update(`${bucket}\u0000${key}`).digest('hex').slice(0, 24);
  return `${MANIFESTS_PREFIX}factory=${factory}/${h}.json`;
}

/** The manifest the ETL writes for a raw object (under the factory the key is accounted to). */
export function manifestKeyOf(rawBucket: string, rawKey: string): string {
  return manifestKey(accountingFactory(rawKey), rawBucket, rawKey);
}

/** `manifests/factory=<f>/<hash>.json` → its factory. */
export function parseManifestKey(key: string): { factory: string } | undefined {
  const m = /^manifests\/factory=([^/]+)\/[^/]+\.json$/.exec(key);
  return m ? { factory: m[1]! } : undefined;
}

// ---- normalized and enriched data ----

export const NORMALIZED_PREFIX = 'normalized/';
export const ENRICHED_PREFIX = 'enriched/';

/**
 * The time partition of a data object: the UTC month of its rows (`month=2024-01`), so a file spanning
 * a year makes 12–13 objects, not 366; within an object the rows keep their `date` column, in time
 * order. Objects of earlier releases are under `date=<yyyy-mm-dd>`: still read, never written.
 */
export type TimePartition = { kind: 'month' | 'date'; value: string };

export interface DataKey {
  layer: 'normalized' | 'enriched';
  table: DataTable;
  factory: string;
  partition: TimePartition;
  /** File name without `.parquet`. */
  name: string;
}

/** When a partition's rows end: the start of the next UTC month (or day, for the earlier layout), in ms. */
export function partitionEnd(p: TimePartition): number {
  const [y, m, d] = p.value.split('-').map(Number) as [number, number, number?];
  return p.kind === 'month' ? Date.UTC(y, m, 1) : Date.UTC(y, m - 1, (d ?? 1) + 1);
}

/** The UTC month (`2024-01`) of a `date` value (`2024-01-02`), the partition an object's rows go to. */
export function monthOf(date: string): string {
  return date.slice(0, 7);
}

/**
 * The path of a data file below its layer: `<table>/factory=<f>/month=<m>/<name>.parquet`.
 */
export function dataPath(table: DataTable, factory: string, partition: TimePartition, name: string): string {
  return `${table}/factory=${factory}/${partition.kind}=${partition.value}/${name}.parquet`;
}

export function dataKey(k: DataKey): string {
  return `${k.layer}/${dataPath(k.table, k.factory, k.partition, k.name)}`;
}

export function parseDataKey(key: string): DataKey | undefined {
  const m =
    /^(normalized|enriched)\/([a-z_]+)\/factory=([^/]+)\/(month|date)=([^/]+)\/([^/]+)\.parquet$/.exec(key);
  if (!m || !isDataTable(m[2]!)) return undefined;
  return {
    layer: m[1] as DataKey['layer'],
    table: m[2],
    factory: m[3]!,
    partition: { kind: m[4] as TimePartition['kind'], value: m[5]! },
    name: m[6]!,
  };
}

/** `normalized/<table>/…` → `enriched/<table>/…`: same partitions, same name. */
export function enrichedKey(normalized: string): string {
  const k = parseDataKey(normalized);
  if (k?.layer !== 'normalized') throw new Error(`not a normalized data key: ${normalized}`);
  return dataKey({ ...k, layer: 'enriched' });
}

// ---- quarantine ----

export const QUARANTINE_PREFIX = 'quarantine/';
export const REJECTS_PREFIX = `${QUARANTINE_PREFIX}rejects/`;

/** The rejected lines of one raw object version. */
export function rejectsKey(factory: string, id: string): string {
  return `${REJECTS_PREFIX}factory=${factory}/${id}.parquet`;
}

export function isRejectsKey(key: string): boolean {
  return key.startsWith(REJECTS_PREFIX) && key.endsWith('.parquet');
}

/** The record of a whole file that was quarantined (binary, corrupt gzip, bad factory). */
export function quarantinedFileKey(factory: string, id: string): string {
  return `${QUARANTINE_PREFIX}files/factory=${factory}/${id}.json`;
}

// ---- state and reference data in the lake ----

export const REFERENCE_FILES = { devices: 'devices.yaml', errorCodes: 'error-codes.yaml' } as const;

/** Where an updated copy of the reference data is picked up from, in the lake bucket. */
export function referenceKey(name: keyof typeof REFERENCE_FILES): string {
  return `reference/${REFERENCE_FILES[name]}`;
}

export function fetchStateKey(factory: string, source: string): string {
  return `fetch-state/factory=${factory}/${source}.json`;
}

// ---- failure records (contracts/failures.ts) ----

export const FAILURES_PREFIX = 'failures/';

/** `failures/<queue>/<messageId>.json` (SQS message ids are UUIDs; encoded anyway, keys are opaque). */
export function failureKey(queue: string, messageId: string): string {
  return `${FAILURES_PREFIX}${queue}/${encodeURIComponent(messageId)}.json`;
}

export const RECONCILER_STATE_KEY = 'reconciler/state.json';

// ---- warehouse bucket ----

/** The warehouse's entry point and commit point (see docs/architecture.md, "Warehouse files"). */
export const DELTA_KEY = 'telemetry-delta.duckdb';
/** Base files: immutable, one key each, written by a compaction (or the first batch). */
export const BASES_PREFIX = 'bases/';
/** The single warehouse file of releases before the delta: adopted as the first base, as is. */
export const LEGACY_KEY = 'telemetry.duckdb';
/** Per-(factory, device, metric) baselines the warehouse publishes for the enrichment. */
export const BASELINES_KEY = 'baselines/readings.parquet';

/** A new key for a base of this generation (unique: a base object is never overwritten). */
export function newBaseKey(generation: number): string {
  return `${BASES_PREFIX}telemetry-${String(generation).padStart(6, '0')}-${randomUUID().slice(0, 8)}.duckdb`;
}

/**
 * Level-1 files: immutable, one key each — the rows committed since the base, folded out of the delta
 * whenever it grows past a few MB, so that a commit uploads a small delta whatever the warehouse holds.
 */
export const L1_PREFIX = 'l1/';

/** A new key for a level-1 file over a base of this generation. */
export function newL1Key(generation: number): string {
  return `${L1_PREFIX}telemetry-${String(generation).padStart(6, '0')}-${randomUUID().slice(0, 8)}.duckdb`;
}

/** The generation in a key made by `newBaseKey`. */
export function baseGeneration(key: string): number | undefined {
  const m = /^bases\/telemetry-(\d+)-[0-9a-f]+\.duckdb$/.exec(key);
  return m ? Number(m[1]) : undefined;
}
