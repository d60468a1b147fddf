import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import type { DuckDBInstance } from '@duckdb/node-api';
import { parseFactories, ruleForKey } from '../functions/contracts/factories.js';
import { connectUtc, sqlString } from '../functions/core/duckdb.js';
import { etlText } from '../functions/etl/etl-text.js';
import { formatSql } from '../functions/etl/formats.js';
import { resolveRule } from '../functions/etl/rule.js';
import type { Format } from './corpus.js';

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
      // After all of the corpus (it starts 2026-01-01, 100 ms a line): no line is ahead of its object.
      objectTime: new Date('2027-01-01T00:00:00Z'),
      keyDate: undefined,
      timestamps: CONFIG.limits.timestamps,
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

/**
 * The ETL's parse step alone: the format's parsing SQL — JSON extraction, CSV field splitting, the
 * syslog or template regular expression — with the rule the ETL resolves for the file, over lines
 * already in a table (read untimed), into a table; no reading, numbering, conversion, mapping, reasons
 * or Parquet. The ETL does this and more on the same data, so ceiling ÷ this time bounds the ETL's ratio
 * from above: what no implementation parsing each line this way can beat.
 */
export async function parseOnly(
  db: DuckDBInstance,
  path: string,
): Promise<{ run: () => Promise<void>; close: () => void }> {
  const factory = CONFIG.factories.get('bench')!;
  const key = `bench/${path.split('/').pop()}`;
  const file = await open(path);
  const { buffer, bytesRead } = await file
    .read(Buffer.alloc(64 * 1024), 0, 64 * 1024, 0)
    .finally(() => file.close());
  const head = buffer.subarray(0, bytesRead).toString('utf8').split('\n').slice(0, 64);
  const rule = resolveRule(ruleForKey(factory, key), head);
  const format = formatSql(rule, {
    timeZone: factory.timezone,
    yearReference: new Date('2026-01-02T00:00:00Z'),
  });
  const c = await connectUtc(db);
  await c.run(`CREATE OR REPLACE TEMP TABLE data_lines AS SELECT 0::BIGINT AS n, line AS raw, 1 AS lines
    FROM read_csv(${sqlString(path)}, columns = {'line': 'VARCHAR'}, delim = '\\x01', quote = '', escape = '', header = false)
    ${rule.csv?.header ? 'OFFSET 1' : ''}`);
  return {
    run: async () => {
      await c.run(`CREATE OR REPLACE TEMP TABLE parsed AS ${format.parse}`);
    },
    close: () => c.closeSync(),
  };
}

/** Syslog's severity names, by number (RFC 5424). */
const SEVERITY_NAMES = `['emergency', 'alert', 'critical', 'error', 'warning', 'notice', 'info', 'debug']`;

/** The reference's per-format SELECT: DuckDB's own readers and plain SQL, the ETL's output columns. */
function referenceSelect(path: string, format: Format, key: string, timeZone: string): string {
  const file = sqlString(path);
  const lines = `read_csv(${file}, columns = {'line': 'VARCHAR'}, delim = '\\x01', quote = '', escape = '', header = false)`;
  const tz = sqlString(timeZone);
  const common = `'bench' AS factory, ${sqlString(key)} AS source_key, NULL::BIGINT AS source_line`;
  const date = (ts: string) => `CAST(CAST(timezone('UTC', ${ts}) AS DATE) AS VARCHAR) AS date`;
  const events = (
    src: string,
  ) => `SELECT ts, factory, device, severity, ${SEVERITY_NAMES}[severity + 1] AS severity_name,
      code, component, message, NULL::JSON AS attributes, source_key, source_line, ${date('ts')},
      severity_raw, 1 AS source_lines
    FROM (${src}) WHERE ts IS NOT NULL`;
  switch (format) {
    case 'jsonl':
      return `SELECT ts, ${common}, device, metric, value, unit, NULL::JSON AS attributes, ${date('ts')}
        FROM (SELECT try_cast(ts AS TIMESTAMPTZ) AS ts, device, metric, value, unit
              FROM read_json(${file}, format = 'newline_delimited', ignore_errors = true,
                columns = {ts: 'VARCHAR', device: 'VARCHAR', metric: 'VARCHAR', value: 'DOUBLE', unit: 'VARCHAR'}))
        WHERE ts IS NOT NULL AND device IS NOT NULL AND value IS NOT NULL`;
    case 'csv':
      // Wide rows: one reading per metric column (UNPIVOT), the naive times in the factory's zone.
      return `SELECT ts, ${common}, device, metric, value, NULL::VARCHAR AS unit, NULL::JSON AS attributes, ${date('ts')}
        FROM (SELECT timezone(${tz}, try_cast("timestamp" AS TIMESTAMP)) AS ts, machine AS device, metric, try_cast(value AS DOUBLE) AS value
              FROM (UNPIVOT (SELECT * FROM read_csv(${file}, header = true, all_varchar = true))
                    ON COLUMNS(* EXCLUDE ("timestamp", machine)) INTO NAME metric VALUE value))
        WHERE ts IS NOT NULL AND value IS NOT NULL`;
    case 'syslog':
      // RFC 5424 and RFC 3164 lines, as the ETL's syslog format reads them (the year-less ones in the
      // factory's zone, their year the corpus's).
      return events(`SELECT
          coalesce(try_cast(a[2] AS TIMESTAMPTZ), timezone(${tz}, try_strptime('2026 ' || b[2], '%Y %b %d %H:%M:%S'))) AS ts,
          ${common}, coalesce(nullif(a[3], ''), b[3]) AS device,
          CAST(coalesce(nullif(a[1], ''), b[1]) AS INTEGER) % 8 AS severity, NULL::VARCHAR AS code,
          coalesce(nullif(a[4], ''), b[4]) AS component, coalesce(nullif(a[7], ''), b[6]) AS message,
          '<' || coalesce(nullif(a[1], ''), b[1]) || '>' AS severity_raw
        FROM (SELECT
            regexp_extract(line, '^<(\\d+)>1 (\\S+) (\\S+) (\\S+) (\\S+) (\\S+) (?:\\[[^\\]]*\\]|-) ?(.*)$', ['p', 't', 'h', 'a', 'i', 'm', 'x']) AS s5,
            regexp_extract(line, '^<(\\d+)>(\\w{3} +\\d+ \\d\\d:\\d\\d:\\d\\d) (\\S+) ([^\\[:]+)(?:\\[\\d+\\])?: (.*)$', ['p', 't', 'h', 'a', 'x']) AS s3
          FROM ${lines})
        CROSS JOIN LATERAL (SELECT [s5.p, s5.t, s5.h, s5.a, s5.i, s5.m, s5.x] AS a, [s3.p, s3.t, s3.h, s3.a, NULL, s3.x] AS b)`);
    case 'template':
      // "<Date> <Time> <Pid> <Level> <Component>: <Content>", the time as "%y%m%d %H%M%S" in the zone.
      return events(`SELECT timezone(${tz}, try_strptime(t.d || ' ' || t.t, '%y%m%d %H%M%S')) AS ts, ${common},
          NULL::VARCHAR AS device,
          CASE upper(t.l) WHEN 'ERROR' THEN 3 WHEN 'WARN' THEN 4 WHEN 'INFO' THEN 6 WHEN 'DEBUG' THEN 7 ELSE 6 END AS severity,
          nullif(regexp_extract(t.c, '\\b([A-Z]\\d{4})\\b', 1), '') AS code, t.comp AS component, t.c AS message,
          t.l AS severity_raw
        FROM (SELECT regexp_extract(line, '^(\\S+) (\\S+) (\\S+) (\\S+) ([^:]+): (.*)$', ['d', 't', 'p', 'l', 'comp', 'c']) AS t
              FROM ${lines})`);
  }
}

/**
 * A fair reference: the same output as the ETL — its columns, wide rows unpivoted, timestamps
 * converted in the factory's zone, one Parquet file per UTC day (zstd level 1, like the ETL) — with
 * DuckDB's own readers and plain SQL, but no line numbers and no rejects (a bad line is dropped, not
 * accounted for). The ETL's time over this one is what its accounting costs.
 */
export async function referenceFile(
  db: DuckDBInstance,
  path: string,
  format: Format,
  tmp: string,
): Promise<{ rows: number }> {
  const c = await connectUtc(db);
  const out = await mkdtemp(join(tmp, 'reference-'));
  const factory = CONFIG.factories.get('bench')!;
  try {
    const select = referenceSelect(path, format, `bench/${path.split('/').pop()}`, factory.timezone);
    await c.run(`CREATE OR REPLACE TEMP TABLE reference_rows AS ${select}`);
    const rows = Number((await c.runAndReadAll('SELECT count(*) FROM reference_rows')).getRows()[0]?.[0]);
    await c.run(
      `COPY reference_rows TO ${sqlString(out)} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, PARTITION_BY (date))`,
    );
    await c.run('DROP TABLE reference_rows');
    return { rows };
  } finally {
    c.closeSync();
    await rm(out, { recursive: true, force: true });
  }
}
