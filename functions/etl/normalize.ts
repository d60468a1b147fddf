import { mkdir, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { DuckDBConnection, DuckDBTimestampTZValue } from '@duckdb/node-api';
import { sqlString } from '../core/duckdb.js';
import type { FieldRef, Mapping } from './factories.js';
import { type FormatContext, type FormatSql, formatSql, severityFor } from './formats.js';
import type { SplitResult } from './line-splitter.js';
import { mappedFields, type ResolvedRule } from './rule.js';
import { severityNameSql } from './severity.js';
import { timestampSql } from './timestamps.js';

/**
 * Parses, validates and normalizes one split file inside DuckDB, and writes the Parquet outputs.
 * Every line ends in exactly one bucket: loaded, rejected (with a reason), blank or header.
 */

export interface NormalizeInput {
  split: SplitResult;
  rule: ResolvedRule;
  factory: string;
  sourceKey: string;
  /** Output file name stem, derived from the input object's identity. */
  id: string;
  outDir: string;
  context: FormatContext;
  /** Device when the mapping names none: the file name without extensions. */
  defaultDevice: string;
}

export interface LineCounts {
  total: number;
  loaded: number;
  rejected: number;
  blank: number;
  header: number;
}

export interface OutputFile {
  kind: 'readings' | 'events' | 'rejects';
  /** Hive-partitioned path relative to the output folder, e.g. `readings/factory=a/date=2024-01-02/<id>.parquet`. */
  relativePath: string;
  path: string;
}

export interface NormalizeResult {
  lines: LineCounts;
  rows: { readings: number; events: number };
  rejectReasons: Record<string, number>;
  files: OutputFile[];
  minTs?: string;
  maxTs?: string;
}

async function scalar(c: DuckDBConnection, sql: string): Promise<number> {
  const r = await c.runAndReadAll(sql);
  return Number(r.getRows()[0]?.[0] ?? 0);
}

function refSql(
  format: FormatSql,
  ref: FieldRef | undefined,
  keyFields: Record<string, string | undefined>,
): string | undefined {
  if (ref === undefined) return undefined;
  let expr: string;
  if (typeof ref === 'string') expr = format.field(ref);
  else if (Array.isArray(ref)) expr = `concat_ws(' ', ${ref.map((r) => format.field(r)).join(', ')})`;
  else if ('const' in ref) expr = sqlString(ref.const);
  else {
    const v = keyFields[ref.fromKey];
    expr = v === undefined ? 'CAST(NULL AS VARCHAR)' : sqlString(v);
  }
  return `nullif(trim(${expr}), '')`;
}

export async function normalize(c: DuckDBConnection, input: NormalizeInput): Promise<NormalizeResult> {
  const { split, rule, context } = input;
  const format = formatSql(rule, context);
  const keyFields = fromKeyValues(rule.map, input.sourceKey);
  const ref = (r: keyof Mapping) => refSql(format, rule.map[r], keyFields);

  // Lines rejected before DuckDB (invalid UTF-8, NUL bytes, over-long) — appended, never spliced as SQL.
  await c.run('CREATE OR REPLACE TEMP TABLE prerejects (n BIGINT, raw VARCHAR, reason VARCHAR)');
  if (split.rejects.length > 0) {
    const appender = await c.createAppender('prerejects', 'main', 'temp');
    for (const r of split.rejects) {
      appender.appendBigInt(BigInt(r.line));
      appender.appendVarchar(r.raw);
      appender.appendVarchar(r.reason);
      appender.endRow();
    }
    appender.closeSync();
  }

  // All lines with their numbers: each chunk file holds consecutive lines starting at `first_line`.
  const chunks = split.chunks.map((ch) => `(${sqlString(ch.path)}, ${ch.firstLine}, ${ch.lines})`).join(', ');
  await c.run(
    chunks
      ? `CREATE OR REPLACE TEMP TABLE lines AS
          SELECT c.first_line + l.i - 1 AS n, rtrim(l.raw, chr(13)) AS raw
          FROM (SELECT filename, unnest(s) AS raw, generate_subscripts(s, 1) AS i
                FROM (SELECT filename, string_split(content, chr(10)) AS s FROM read_text([${split.chunks.map((ch) => sqlString(ch.path)).join(', ')}]))) l
          JOIN (VALUES ${chunks}) c(filename, first_line, lines) USING (filename)
          WHERE l.i <= c.lines AND c.first_line + l.i - 1 NOT IN (SELECT n FROM prerejects)`
      : 'CREATE OR REPLACE TEMP TABLE lines (n BIGINT, raw VARCHAR)',
  );
  const headerSkip = rule.csv?.header ? `AND n <> (SELECT min(n) FROM lines WHERE trim(raw) <> '')` : '';
  await c.run(
    `CREATE OR REPLACE TEMP TABLE data_lines AS SELECT n, raw FROM lines WHERE trim(raw) <> '' ${headerSkip}`,
  );
  await c.run(`CREATE OR REPLACE TEMP TABLE parsed AS ${format.parse}`);

  const tsRef = ref('ts');
  const tsExpr =
    format.ts && !rule.map.ts
      ? format.ts
      : {
          expr: tsRef
            ? timestampSql(tsRef, rule.timestamp.format, rule.timestamp.timezone ?? context.timeZone)
            : 'CAST(NULL AS TIMESTAMPTZ)',
          raw: tsRef ?? 'CAST(NULL AS VARCHAR)',
        };
  const device = ref('device') ?? sqlString(input.defaultDevice);

  if (rule.table === 'readings') {
    let candidates: string;
    if (rule.wide) {
      const used = mappedFields({ ts: rule.map.ts, device: rule.map.device });
      const metrics = rule.wide.metrics === '*' ? rule.fields.filter((f) => !used.has(f)) : rule.wide.metrics;
      const items = metrics.map(
        (m) =>
          `{'metric': ${sqlString(m)}, 'value_raw': nullif(trim(${format.field(m)}), ''), 'unit': ${rule.wide!.units[m] === undefined ? 'CAST(NULL AS VARCHAR)' : sqlString(rule.wide!.units[m]!)}}`,
      );
      // Timestamp and partition date once per line, before the line fans out into one row per metric.
      candidates = items.length
        ? `SELECT n, ts, ts_raw, device, date, m.metric AS metric, m.value_raw AS value_raw, m.unit AS unit
           FROM (SELECT n, ts, ts_raw, device, ${utcDate('ts')} AS date, unnest([${items.join(', ')}]) AS m
                 FROM (SELECT *, ${tsExpr.expr} AS ts, ${tsExpr.raw} AS ts_raw, ${device} AS device FROM parsed WHERE err IS NULL))`
        : `SELECT n, CAST(NULL AS TIMESTAMPTZ) ts, NULL ts_raw, NULL device, NULL date, NULL metric, NULL value_raw, NULL unit FROM parsed WHERE false`;
    } else {
      candidates = `SELECT n, ts, ts_raw, device, ${utcDate('ts')} AS date, metric, value_raw, unit FROM (
        SELECT n, ${tsExpr.expr} AS ts, ${tsExpr.raw} AS ts_raw, ${device} AS device,
          ${ref('metric') ?? 'CAST(NULL AS VARCHAR)'} AS metric, ${ref('value') ?? 'CAST(NULL AS VARCHAR)'} AS value_raw,
          ${ref('unit') ?? 'CAST(NULL AS VARCHAR)'} AS unit
        FROM parsed WHERE err IS NULL)`;
    }
    await c.run(
      `CREATE OR REPLACE TEMP TABLE cand AS
        SELECT *, TRY_CAST(${rule.csv?.decimalComma ? "replace(value_raw, ',', '.')" : 'value_raw'} AS DOUBLE) AS value
        FROM (${candidates})`,
    );
    await c.run(`CREATE OR REPLACE TEMP TABLE line_errors AS
      SELECT n, min(reason) AS reason FROM (
      SELECT n, reason FROM (
        SELECT n, CASE
          WHEN ts IS NULL THEN CASE WHEN ts_raw IS NULL THEN 'ts: missing' ELSE 'ts: cannot parse timestamp "' || ts_raw || '"' END
          WHEN device IS NULL THEN 'device: missing'
          WHEN metric IS NULL THEN 'metric: missing'
          WHEN value_raw IS NOT NULL AND (value IS NULL OR NOT isfinite(value)) THEN 'value: ' || metric || ' is not a number: "' || value_raw || '"'
        END AS reason FROM cand)
      WHERE reason IS NOT NULL
      UNION ALL
      SELECT n, 'value: no metric value on the line' FROM cand GROUP BY n HAVING count(value_raw) = 0
      UNION ALL
      SELECT n, 'no metric columns' FROM parsed WHERE err IS NULL AND n NOT IN (SELECT n FROM cand))
      GROUP BY n`);
    await c.run(
      `CREATE OR REPLACE TEMP TABLE out_readings AS
      SELECT ts, ${sqlString(input.factory)} AS factory, device, metric, value, unit,
             $source_key AS source_key, n AS source_line, date
      FROM cand ANTI JOIN line_errors USING (n) WHERE value IS NOT NULL`,
      { source_key: input.sourceKey },
    );
    await c.run('CREATE OR REPLACE TEMP TABLE out_events AS SELECT NULL WHERE false');
  } else {
    const code =
      ref('code') ??
      (rule.codePattern && ref('message')
        ? `nullif(regexp_extract(${ref('message')}, ${sqlString(rule.codePattern)}, 1), '')`
        : 'CAST(NULL AS VARCHAR)');
    const severity = severityFor(format, ref('severity'));
    await c.run(`CREATE OR REPLACE TEMP TABLE cand AS
      SELECT n, ${tsExpr.expr} AS ts, ${tsExpr.raw} AS ts_raw, ${device} AS device, ${severity} AS severity,
             ${code} AS code, ${ref('component') ?? 'CAST(NULL AS VARCHAR)'} AS component,
             coalesce(${ref('message') ?? 'NULL'}, raw) AS message, CAST(${format.attributes} AS JSON) AS attributes
      FROM parsed WHERE err IS NULL`);
    await c.run(`CREATE OR REPLACE TEMP TABLE line_errors AS
      SELECT n, CASE WHEN ts_raw IS NULL THEN 'ts: missing' ELSE 'ts: cannot parse timestamp "' || ts_raw || '"' END AS reason
      FROM cand WHERE ts IS NULL`);
    await c.run(
      `CREATE OR REPLACE TEMP TABLE out_events AS
      SELECT ts, ${sqlString(input.factory)} AS factory, device, severity, ${severityNameSql('severity')} AS severity_name,
             code, component, message, attributes, $source_key AS source_key, n AS source_line,
             ${utcDate('ts')} AS date
      FROM cand WHERE n NOT IN (SELECT n FROM line_errors)`,
      { source_key: input.sourceKey },
    );
    await c.run('CREATE OR REPLACE TEMP TABLE out_readings AS SELECT NULL WHERE false');
  }

  await c.run(
    `CREATE OR REPLACE TEMP TABLE out_rejects AS
    SELECT $source_key AS source_key, n AS source_line, raw, reason, ${sqlString(input.factory)} AS factory FROM (
      SELECT n, raw, reason FROM prerejects
      UNION ALL SELECT n, raw, err FROM parsed WHERE err IS NOT NULL
      UNION ALL SELECT e.n, l.raw, e.reason FROM line_errors e JOIN lines l USING (n))
    ORDER BY n`,
    { source_key: input.sourceKey },
  );

  const total = split.totalLines;
  const blank = await scalar(c, `SELECT count(*) FROM lines WHERE trim(raw) = ''`);
  const header = rule.csv?.header
    ? await scalar(c, `SELECT count(*) FROM lines WHERE trim(raw) <> ''`).then((x) => Math.min(x, 1))
    : 0;
  const rejected = await scalar(c, 'SELECT count(DISTINCT source_line) FROM out_rejects');
  const table = rule.table === 'readings' ? 'out_readings' : 'out_events';
  const loaded = await scalar(c, `SELECT count(DISTINCT source_line) FROM ${table}`);
  const readings = rule.table === 'readings' ? await scalar(c, 'SELECT count(*) FROM out_readings') : 0;
  const events = rule.table === 'events' ? await scalar(c, 'SELECT count(*) FROM out_events') : 0;
  const reasons = await c.runAndReadAll(
    `SELECT regexp_extract(reason, '^[^:"(]*') AS r, count(*) FROM out_rejects GROUP BY ALL ORDER BY 2 DESC`,
  );
  const range = await c.runAndReadAll(`SELECT min(ts), max(ts) FROM ${table}`);
  const [minTs, maxTs] = (range.getRows()[0] ?? []) as (DuckDBTimestampTZValue | null)[];

  const files: OutputFile[] = [];
  const write = async (kind: OutputFile['kind'], source: string, partitions: string, rows: number) => {
    if (rows === 0) return;
    const dir = join(input.outDir, kind);
    await mkdir(dir, { recursive: true });
    await c.run(`COPY (SELECT * FROM ${source}) TO ${sqlString(dir)}
      (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (${partitions}), WRITE_PARTITION_COLUMNS true,
       FILENAME_PATTERN ${sqlString(input.id)}, OVERWRITE_OR_IGNORE true)`);
    for (const path of await walk(dir))
      files.push({ kind, path, relativePath: relative(input.outDir, path) });
  };
  await write('readings', 'out_readings', 'factory, date', readings);
  await write('events', 'out_events', 'factory, date', events);
  await write('rejects', 'out_rejects', 'factory', rejected);

  return {
    lines: { total, loaded, rejected, blank, header },
    rows: { readings, events },
    rejectReasons: Object.fromEntries(
      reasons.getRows().map(([r, n]) => [String(r).trim() || 'other', Number(n)]),
    ),
    files,
    minTs: minTs ? new Date(Number(minTs.micros / 1000n)).toISOString() : undefined,
    maxTs: maxTs ? new Date(Number(maxTs.micros / 1000n)).toISOString() : undefined,
  };
}

/** The UTC calendar day of a TIMESTAMPTZ, as the `date=` partition value (`2024-01-02`). */
function utcDate(ts: string): string {
  return `CAST(CAST(timezone('UTC', ${ts}) AS DATE) AS VARCHAR)`;
}

/** Values of `{ fromKey: regex }` references: the regex's first group applied to the object key. */
function fromKeyValues(map: Mapping, key: string): Record<string, string | undefined> {
  return Object.fromEntries(
    Object.values(map)
      .filter((r): r is { fromKey: string } => typeof r === 'object' && !Array.isArray(r) && 'fromKey' in r)
      .map((r) => [r.fromKey, new RegExp(r.fromKey).exec(key)?.[1]]),
  );
}

async function walk(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}
