import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import type { DuckDBInstance } from '@duckdb/node-api';
import { connectUtc, sqlString } from '../functions/core/duckdb.js';
import { parseFactories, ruleForKey } from '../functions/etl/factories.js';
import { splitLines } from '../functions/etl/line-splitter.js';
import { normalize } from '../functions/etl/normalize.js';
import { resolveRule } from '../functions/etl/rule.js';

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
    const split = await splitLines(input, { dir: work, maxLineBytes: 1 << 20 });
    const factory = CONFIG.factories.get('bench')!;
    const key = `bench/${path.split('/').pop()}`;
    const rule = resolveRule(ruleForKey(factory, key), split.sample);
    const result = await normalize(c, {
      split,
      rule,
      factory: 'bench',
      sourceKey: key,
      id: 'bench',
      outDir: join(work, 'out'),
      context: { timeZone: factory.timezone, referenceTime: new Date('2026-01-02T00:00:00Z') },
      defaultDevice: 'bench',
    });
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
