import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import type { DuckDBInstance } from '@duckdb/node-api';
import { connectUtc, sqlString } from '../functions/core/duckdb.js';
import { etlText } from '../functions/etl/etl-text.js';
import { parseFactories, ruleForKey } from '../functions/etl/factories.js';

const CONFIG = parseFactories(
  `version: 1
factories:
  bench:
    name: Bench
    timezone: Europe/Berlin
    files:
      - { match: "*.log", format: template, template: "<Date> <Time> <Pid> <Level> <Component>: <Content>", timestamp: { format: "%y%m%d %H%M%S" } }
`,
  'bench.yaml',
);

/** The ETL's work on a local file — split, detect, parse and normalize in DuckDB, write Parquet — minus S3. */
export async function etlFile(
  db: DuckDBInstance,
  path: string,
  tmp: string,
): Promise<{ rows: number; lines: number }> {
  const work = await mkdtemp(join(tmp, 'etl-'));
  const c = await connectUtc(db);
  try {
    const input = path.endsWith('.gz')
      ? createReadStream(path).pipe(createGunzip())
      : createReadStream(path, { highWaterMark: 1 << 20 });
    const factory = CONFIG.factories.get('bench')!;
    const key = `bench/${path.split('/').pop()}`;
    const text = await etlText(c, input, {
      dir: work,
      maxLineBytes: 1 << 20,
      fileRule: ruleForKey(factory, key),
      factory: 'bench',
      factoryTimeZone: factory.timezone,
      sourceKey: key,
      id: 'bench',
      defaultDevice: 'bench',
      referenceTime: new Date('2026-01-02T00:00:00Z'),
    });
    if (text.kind !== 'normalized') throw new Error(`${path}: ${text.kind}`);
    const { result } = text;
    return { rows: result.rows.readings + result.rows.events, lines: result.lines.total };
  } finally {
    c.closeSync();
    await rm(work, { recursive: true, force: true });
  }
}

/** The ceiling: DuckDB's own reader straight into Parquet, nothing else. */
export async function ceilingFile(
  db: DuckDBInstance,
  path: string,
  format: string,
  tmp: string,
): Promise<void> {
  const c = await connectUtc(db);
  const out = join(tmp, `ceiling-${Date.now()}.parquet`);
  try {
    const reader =
      format === 'jsonl'
        ? `read_json(${sqlString(path)}, format = 'newline_delimited', ignore_errors = true)`
        : format === 'csv'
          ? `read_csv(${sqlString(path)})`
          : `read_csv(${sqlString(path)}, columns = {'line': 'VARCHAR'}, delim = '\\x01', quote = '', escape = '', header = false)`;
    await c.run(`COPY (SELECT * FROM ${reader}) TO ${sqlString(out)} (FORMAT parquet, COMPRESSION zstd)`);
  } finally {
    c.closeSync();
    await rm(out, { force: true });
  }
}
