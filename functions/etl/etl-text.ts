import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { FileRule } from '../contracts/factories.js';
import { type LineChunk, type SplitResult, startSplit } from './line-splitter.js';
import { type NormalizeResult, normalize } from './normalize.js';
import { type ResolvedRule, resolveRule } from './rule.js';

/**
 * One decompressed text stream → normalized Parquet in `dir/out`. The byte pass and DuckDB run side by
 * side: a batch is parsed while the splitter reads the next (it runs at most two batches ahead, so the
 * temporary disk holds a few batches, not the file). The rule is resolved from the sample the first
 * batch brings. An object that is binary or has no line is reported, not normalized; an input error
 * (e.g. corrupt gzip) is thrown as it comes.
 */

export interface EtlTextOptions {
  dir: string;
  maxLineBytes: number;
  /** The factory's rule for this key, if any (otherwise everything is detected). */
  fileRule: FileRule | undefined;
  factory: string;
  factoryTimeZone: string;
  sourceKey: string;
  id: string;
  defaultDevice: string;
  /** When the object was created. */
  objectTime: Date;
  /** The day the object's key names (`<factory>/yyyy/mm/dd/…`), if any. */
  keyDate: string | undefined;
  /** The plausible window for timestamps: not before this, not more than this many hours after the object. */
  timestamps: { notBefore: string; maxAheadHours: number };
  /** Chunk size of the byte pass; tests make it small to cross many chunk and batch boundaries. */
  chunkBytes?: number;
}

export type EtlTextOutcome =
  | { kind: 'binary'; split: SplitResult }
  | { kind: 'empty'; split: SplitResult }
  | { kind: 'normalized'; split: SplitResult; rule: ResolvedRule; result: NormalizeResult };

/** Batches the byte pass may write ahead of the one DuckDB is parsing. */
const AHEAD_BATCHES = 2;
/** Text per batch: the splitter's default 8 chunks of 4 MB. */
const BATCH_BYTES = 32 * 1024 * 1024;

/**
 * About how much temporary disk the ETL of an object takes at its peak: the batches of text written
 * ahead (bounded, whatever the object's size) and the Parquet outputs (a fraction of the text). Gzip'd
 * logs are taken to expand eightfold. For error messages; the ETL does not reserve anything.
 */
export function tempBytesNeeded(objectBytes: number, gzip: boolean): number {
  const text = gzip ? objectBytes * 8 : objectBytes;
  return Math.min(text, (AHEAD_BATCHES + 1) * BATCH_BYTES) + Math.ceil(text / 4);
}

export async function etlText(
  c: DuckDBConnection,
  input: Readable,
  options: EtlTextOptions,
): Promise<EtlTextOutcome> {
  const splitting = startSplit(input, {
    dir: options.dir,
    maxLineBytes: options.maxLineBytes,
    chunkBytes: options.chunkBytes,
    aheadBatches: AHEAD_BATCHES,
  });
  const batches = splitting.batches[Symbol.asyncIterator]();
  let finished = false;
  try {
    const first = await batches.next();
    const split = splitting.result;
    if (split.binary) {
      finished = true;
      return { kind: 'binary', split };
    }
    if (first.done && split.totalLines === 0) {
      finished = true;
      return { kind: 'empty', split };
    }

    const rule = resolveRule(options.fileRule, split.sample);
    async function* all(): AsyncGenerator<LineChunk[]> {
      if (first.done) return;
      yield first.value;
      yield* { [Symbol.asyncIterator]: () => batches };
    }
    const result = await normalize(c, {
      split,
      batches: all(),
      rule,
      factory: options.factory,
      sourceKey: options.sourceKey,
      id: options.id,
      outDir: join(options.dir, 'out'),
      time: {
        timeZone: rule.timestamp.timezone ?? options.factoryTimeZone,
        // Year-less stamps take the year of the key's day (its end), else of the object's creation.
        yearReference: options.keyDate
          ? new Date(Date.parse(`${options.keyDate}T00:00:00Z`) + 86_400_000)
          : options.objectTime,
      },
      window: {
        notBefore: new Date(options.timestamps.notBefore),
        notAfter: new Date(options.objectTime.getTime() + options.timestamps.maxAheadHours * 3_600_000),
      },
      objectTime: options.objectTime,
      keyDate: options.keyDate,
      defaultDevice: options.defaultDevice,
    });
    finished = true;
    return { kind: 'normalized', split, rule, result };
  } finally {
    // Stops the splitter (it must not wait for a reader forever), and on an early exit waits for it to
    // stop before the caller removes the work folder it writes into.
    await batches.return?.(undefined);
    if (!finished) input.destroy();
    await splitting.done.catch(() => undefined);
  }
}
