import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DuckDBInstance } from '@duckdb/node-api';
import { parseFactories, ruleForKey } from '../../functions/contracts/factories.js';
import { dateOfRawKey, deviceOfRawKey } from '../../functions/contracts/keys.js';
import { connectUtc } from '../../functions/core/duckdb.js';
import { etlText as etlTextInDuckDB } from '../../functions/etl/etl-text.js';

/**
 * Runs the ETL's domain code (split → resolve rule → normalize in DuckDB) on an in-memory file, and
 * reads the outputs back with DuckDB. No S3 involved.
 */
export async function etlText(
  content: string | Buffer,
  options: {
    yaml?: string;
    key?: string;
    factory?: string;
    maxLineBytes?: number;
    /** When the object was created (default 2025-01-01 00:00 UTC: after the tests' data). */
    objectTime?: Date;
    /** Bytes per piece the input is fed in (default 7: every boundary is exercised). */
    pieceBytes?: number;
  } = {},
) {
  const factoryId = options.factory ?? 'plant';
  const key = options.key ?? `${factoryId}/2024/01/02/file.log`;
  const config = parseFactories(
    options.yaml ?? `version: 1\nfactories:\n  ${factoryId}:\n    name: Plant\n`,
    'test.yaml',
  );
  const factory = config.factories.get(factoryId) ?? {
    id: factoryId,
    name: factoryId,
    timezone: 'UTC',
    files: [],
    sources: [],
  };
  const dir = await mkdtemp(join(tmpdir(), 'etl-test-'));
  const c = await connectUtc(await DuckDBInstance.create(':memory:'));
  try {
    const buf = typeof content === 'string' ? Buffer.from(content) : content;
    // Feed in small pieces so that line and chunk boundaries are exercised.
    const size = options.pieceBytes ?? 7;
    const pieces = Array.from({ length: Math.ceil(buf.length / size) }, (_, i) =>
      buf.subarray(i * size, i * size + size),
    );
    const text = await etlTextInDuckDB(c, Readable.from(pieces), {
      dir,
      maxLineBytes: options.maxLineBytes ?? 1 << 20,
      chunkBytes: 64,
      fileRule: ruleForKey(factory, key),
      factory: factoryId,
      factoryTimeZone: factory.timezone,
      sourceKey: key,
      id: 'test',
      defaultDevice: deviceOfRawKey(key),
      objectTime: options.objectTime ?? new Date('2025-01-01T00:00:00Z'),
      keyDate: dateOfRawKey(key),
      timestamps: config.limits.timestamps,
    });
    if (text.kind !== 'normalized') throw new Error(`not normalized: ${text.kind}`);
    const { rule, result } = text;
    const read = async (kind: string) => {
      const files = result.files.filter((f) => f.kind === kind).map((f) => `'${f.path}'`);
      if (files.length === 0) return [];
      const r = await c.runAndReadAll(
        `SELECT * EXCLUDE (date) FROM read_parquet([${files.join(',')}]) ORDER BY source_line, ${kind === 'readings' ? 'metric' : 'ts'}`,
      );
      return r.getRowObjectsJson();
    };
    const rejects = async () => {
      const files = result.files.filter((f) => f.kind === 'rejects').map((f) => `'${f.path}'`);
      if (files.length === 0) return [];
      return (
        await c.runAndReadAll(
          `SELECT source_line, raw, reason FROM read_parquet([${files.join(',')}]) ORDER BY source_line`,
        )
      ).getRowObjectsJson();
    };
    return {
      rule,
      result,
      readings: await read('readings'),
      events: await read('events'),
      rejects: await rejects(),
    };
  } finally {
    c.closeSync();
    await rm(dir, { recursive: true, force: true });
  }
}
