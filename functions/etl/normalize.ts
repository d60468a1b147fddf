import { mkdir, readdir, rm } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import type { DuckDBConnection, DuckDBTimestampTZValue } from '@duckdb/node-api';
import { sqlString } from '../core/duckdb.js';
import type { FieldRef, Mapping } from './factories.js';
import { type FormatContext, type FormatSql, formatSql, severityFor } from './formats.js';
import type { LineChunk, SplitResult } from './line-splitter.js';
import { mappedFields, type ResolvedRule } from './rule.js';
import { severityNameSql } from './severity.js';
import { timestampSql } from './timestamps.js';

/**
 * Parses, validates and normalizes one split file inside DuckDB, and writes the Parquet outputs.
 * Every line ends in exactly one bucket: loaded, rejected (with a reason), blank or header.
 *
 * The file goes through in batches of chunks (32 MB of text), so memory does not grow with the file.
 * Per batch, two tables are materialized, each once: `data_lines (n, raw)` — the non-blank lines with
 * their numbers — and `cand`, one row per data line with its parsed, converted columns and `reason`
 * (NULL when the line loads; the raw text is kept only for rejected lines). Outputs, counts and rejects
 * are scans of `cand`. (An earlier version materialized five tables over the whole file, raw text in
 * three of them, and was 2–3× slower: the README's benchmark section has the before/after.)
 */

export interface NormalizeInput {
  /** The split, filled in as the input is read: complete once `batches` has ended. */
  split: SplitResult;
  batches: AsyncIterable<LineChunk[]>;
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

function refSql(
  format: FormatSql,
  ref: FieldRef | undefined,
  keyFields: Record<string, string | undefined>,
): string | undefined {
  if (ref === undefined) return undefined;
  // One field: extracted per line, trimmed only when it needs it. The rest are constants or joins.
  if (typeof ref === 'string') return trimmedSql(format.field(ref));
  let expr: string;
  if (Array.isArray(ref)) expr = `concat_ws(' ', ${ref.map((r) => format.field(r)).join(', ')})`;
  else if ('const' in ref) expr = sqlString(ref.const);
  else {
    const v = keyFields[ref.fromKey];
    if (v === undefined) return 'CAST(NULL AS VARCHAR)';
    expr = sqlString(v);
  }
  return `nullif(trim(${expr}), '')`;
}

/**
 * `nullif(trim(x), '')` for a cheap field expression `x`. DuckDB's trim strips the Unicode space
 * separators and always copies the string; only a value that starts or ends with a space, or has any
 * non-ASCII character (the other separators are all non-ASCII), needs it. The guard is ~5× cheaper
 * than the trim, which ran on every field of every line (profiled: a quarter of the JSONL parse).
 */
function trimmedSql(x: string): string {
  return `CASE WHEN prefix(${x}, ' ') OR suffix(${x}, ' ') OR strlen(${x}) <> length(${x}) THEN nullif(trim(${x}), '') ELSE nullif(${x}, '') END`;
}

/** Days a batch may span and still be written one COPY per day (see writeByDate). */
const COPIES_PER_DATE_MAX = 8;

/** The columns of `cand` that every table has, ahead of its own. */
const LINE_COLUMNS = ['n', 'ts', 'ts_raw', 'device', 'date'];

/**
 * SQL over a batch of chunks yielding every non-blank line as `(n, raw)`, without its carriage return.
 * Each chunk file holds whole lines, ends with a newline and is named after its first line's number.
 * Blank means nothing but ASCII spaces (as `isBlank` in the splitter); the cheap tests go first (this
 * runs once per line, on one thread: see below).
 */
function dataLinesSql(batch: LineChunk[], header: number | undefined): string {
  const files = `[${batch.map((ch) => sqlString(ch.path)).join(', ')}]`;
  return `SELECT n, raw FROM (
      SELECT first + i - 1 AS n, CASE WHEN suffix(line, chr(13)) THEN rtrim(line, chr(13)) ELSE line END AS raw
      FROM (SELECT first, unnest(s) AS line, generate_subscripts(s, 1) AS i
            FROM (SELECT CAST(regexp_extract(filename, 'chunk-(\\d+)\\.txt$', 1) AS BIGINT) AS first,
                         string_split(content, chr(10)) AS s
                  FROM read_text(${files}))))
    WHERE raw <> '' AND (NOT prefix(raw, ' ') OR trim(raw, ' ') <> '')${header === undefined ? '' : ` AND n <> ${header}`}`;
}

/** A reject reason for an unparseable or missing timestamp. */
const TS_REASON = `CASE WHEN ts_raw IS NULL THEN 'ts: missing' ELSE 'ts: cannot parse timestamp "' || ts_raw || '"' END`;

export async function normalize(c: DuckDBConnection, input: NormalizeInput): Promise<NormalizeResult> {
  const { split, rule, context } = input;
  const format = formatSql(rule, context);
  const keyFields = fromKeyValues(rule.map, input.sourceKey);
  const ref = (r: keyof Mapping) => refSql(format, rule.map[r], keyFields);
  const factory = sqlString(input.factory);

  // The timestamp is the format's own (syslog) or converted from the mapped field's text, once that
  // text is a column of its own (`ts_raw`): `auto` tries several conversions on it.
  const tsRef = ref('ts');
  const tsOwn = format.ts && !rule.map.ts ? format.ts : undefined;
  const tsConverted = tsOwn
    ? undefined
    : tsRef
      ? timestampSql('ts_raw', rule.timestamp.format, rule.timestamp.timezone ?? context.timeZone)
      : 'CAST(NULL AS TIMESTAMPTZ)';
  const device = ref('device') ?? sqlString(input.defaultDevice);
  const none = 'CAST(NULL AS VARCHAR)';

  // One pass over the data lines: parse, map, convert and decide each line's fate (`reason` is NULL
  // for a loaded line). Field expressions yield NULL on a line that did not parse (see FormatSql).
  // The raw text is kept only for rejected lines. Per table:
  let columns: [name: string, sql: string][]; // its own columns, computed per parsed line
  let converted: [name: string, sql: string][] = []; // conversions of those columns
  let keep: string[]; // of those, the ones `cand` keeps
  let checks: string[]; // reject reasons in priority order (CASE branches), after the timestamp
  let outputSql: string; // the output rows, selected from the loaded lines of `cand`
  let readingCount = '0'; // SQL over `cand`: the readings its loaded lines make
  const metricSql = (unit: string | undefined) => (unit === undefined ? none : sqlString(unit));
  if (rule.table === 'readings' && rule.wide) {
    const used = mappedFields({ ts: rule.map.ts, device: rule.map.device });
    const metrics = rule.wide.metrics === '*' ? rule.fields.filter((f) => !used.has(f)) : rule.wide.metrics;
    const units = rule.wide.units;
    const toDouble = (x: string) =>
      `TRY_CAST(${rule.csv?.decimalComma ? `replace(${x}, ',', '.')` : x} AS DOUBLE)`;
    // One raw and one numeric column per metric (r1, v1, …): validated per line, unnested on output.
    columns = metrics.map((m, i) => [`r${i + 1}`, trimmedSql(format.field(m))]);
    converted = metrics.map((_, i) => [`v${i + 1}`, toDouble(`r${i + 1}`)]);
    keep = metrics.map((_, i) => `v${i + 1}`);
    checks =
      metrics.length === 0
        ? [`WHEN true THEN 'no metric columns'`]
        : [
            `WHEN ${metrics.map((_, i) => `r${i + 1} IS NULL`).join(' AND ')} THEN 'value: no metric value on the line'`,
            ...metrics.map(
              (m, i) =>
                `WHEN r${i + 1} IS NOT NULL AND (v${i + 1} IS NULL OR NOT isfinite(v${i + 1})) THEN ${sqlString(`value: ${m} is not a number: "`)} || r${i + 1} || '"'`,
            ),
          ];
    const items = metrics.map(
      (m, i) => `{'metric': ${sqlString(m)}, 'value': v${i + 1}, 'unit': ${metricSql(units[m])}}`,
    );
    readingCount = metrics.length
      ? `sum(${metrics.map((_, i) => `(v${i + 1} IS NOT NULL)::BIGINT`).join(' + ')}) FILTER (reason IS NULL)`
      : '0';
    outputSql = `SELECT ts, ${factory} AS factory, device, m.metric AS metric, m.value AS value, m.unit AS unit,
        $source_key AS source_key, n AS source_line, date
      FROM (SELECT ts, device, n, date, unnest([${items.join(', ') || 'NULL'}]) AS m FROM cand WHERE reason IS NULL)
      WHERE m.value IS NOT NULL`;
  } else if (rule.table === 'readings') {
    columns = [
      ['metric', ref('metric') ?? none],
      ['value_raw', ref('value') ?? none],
      ['unit', ref('unit') ?? none],
    ];
    converted = [
      [
        'value',
        `TRY_CAST(${rule.csv?.decimalComma ? "replace(value_raw, ',', '.')" : 'value_raw'} AS DOUBLE)`,
      ],
    ];
    keep = ['metric', 'value', 'unit'];
    checks = [
      `WHEN metric IS NULL THEN 'metric: missing'`,
      `WHEN value_raw IS NULL THEN 'value: no metric value on the line'`,
      `WHEN value IS NULL OR NOT isfinite(value) THEN 'value: ' || metric || ' is not a number: "' || value_raw || '"'`,
    ];
    readingCount = 'count(*) FILTER (reason IS NULL)';
    outputSql = `SELECT ts, ${factory} AS factory, device, metric, value, unit,
        $source_key AS source_key, n AS source_line, date
      FROM cand WHERE reason IS NULL`;
  } else {
    const code =
      ref('code') ??
      (rule.codePattern && ref('message')
        ? `nullif(regexp_extract(${ref('message')}, ${sqlString(rule.codePattern)}, 1), '')`
        : none);
    columns = [
      ['severity', severityFor(format, ref('severity'))],
      ['code', code],
      ['component', ref('component') ?? none],
      ['message', `coalesce(${ref('message') ?? 'NULL'}, raw)`],
      ['attributes', `CAST(${format.attributes} AS JSON)`],
    ];
    keep = columns.map(([name]) => name);
    checks = [];
    outputSql = `SELECT ts, ${factory} AS factory, device, severity, ${severityNameSql('severity')} AS severity_name,
        code, component, message, attributes, $source_key AS source_key, n AS source_line, date
      FROM cand WHERE reason IS NULL`;
  }
  // The first non-blank line is the header, unless the byte pass rejected it: then it counts as rejected
  // (with its reason) and no line is taken for a header in its place. Known once a batch holds it.
  const headerLine = () =>
    rule.csv?.header && !split.rejects.some((r) => r.line === split.firstLine) ? split.firstLine : undefined;
  const perLine: [string, string][] = [
    ['ts_raw', tsOwn ? tsOwn.raw : (tsRef ?? 'CAST(NULL AS VARCHAR)')],
    ...(tsOwn ? [['ts', tsOwn.expr] as [string, string]] : []),
    ['device', device],
    ...columns,
  ];
  if (tsConverted) converted = [['ts', tsConverted], ...converted];
  const select = (cols: [string, string][]) => cols.map(([name, sql]) => `, ${sql} AS ${name}`).join('\n');
  // Rejects of every batch, and (last) those of the byte pass.
  await c.run(
    `CREATE OR REPLACE TEMP TABLE out_rejects
     (source_key VARCHAR, source_line BIGINT, raw VARCHAR, reason VARCHAR, factory VARCHAR)`,
  );
  const totals = { data: 0, loaded: 0, readings: 0 };
  let minTs: DuckDBTimestampTZValue | undefined;
  let maxTs: DuckDBTimestampTZValue | undefined;
  const files: OutputFile[] = [];
  const params = (sql: string) => (sql.includes('$source_key') ? { source_key: input.sourceKey } : undefined);
  // zstd at level 1: as small as the default level 3 on this data (measured: 17.1 vs 17.2 MB for 2.4M
  // readings) and a quarter faster to write.
  const parquet = 'FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1';
  const copy = async (kind: OutputFile['kind'], source: string, relativePath: string) => {
    const path = join(input.outDir, relativePath);
    await mkdir(dirname(path), { recursive: true });
    await c.run(`COPY (${source}) TO ${sqlString(path)} (${parquet})`, params(source));
    files.push({ kind, path, relativePath });
  };
  // Loaded rows go to one file per UTC day. A file spans a day or two: one COPY per day (each a
  // filtered scan of `cand`) is faster than DuckDB's PARTITION_BY, which is kept for files that span
  // many days (a clock gone wrong) or dates that do not make a plain path.
  const writeByDate = async (kind: ResolvedRule['table'], source: string, stem: string) => {
    const dates = (await c.runAndReadAll('SELECT DISTINCT date FROM cand WHERE reason IS NULL ORDER BY 1'))
      .getRows()
      .map(([d]) => String(d));
    if (dates.length <= COPIES_PER_DATE_MAX && dates.every((d) => /^\d{4}-\d{2}-\d{2}$/.test(d))) {
      for (const date of dates) {
        await copy(
          kind,
          `SELECT * FROM (${source}) WHERE date = ${sqlString(date)}`,
          `${kind}/factory=${input.factory}/date=${date}/${stem}.parquet`,
        );
      }
      return;
    }
    const dir = join(input.outDir, kind);
    await mkdir(dir, { recursive: true });
    const known = new Set(files.map((f) => f.path));
    await c.run(
      `COPY (${source}) TO ${sqlString(dir)}
      (${parquet}, PARTITION_BY (factory, date), WRITE_PARTITION_COLUMNS true,
       FILENAME_PATTERN ${sqlString(`${stem}_{i}`)}, OVERWRITE_OR_IGNORE true)`,
      params(source),
    );
    for (const path of await walk(dir)) {
      if (!known.has(path)) files.push({ kind, path, relativePath: relative(input.outDir, path) });
    }
  };

  // The file is processed batch by batch as the splitter writes them, so that memory and temporary disk
  // are bounded by the batch, not the file, and parsing overlaps reading. Chunk boundaries depend on the
  // content only, so a retry makes the same batches and the same output names: `<id>` for the first
  // batch, `<id>-<b>` for the others.
  let b = 0;
  for await (const batch of input.batches) {
    const stem = b === 0 ? input.id : `${input.id}-${b}`;
    b++;
    // The data lines are materialized first: read_text yields one row per chunk, so a pipeline fed by
    // it directly would run on one thread; a scan of the table runs on all of them.
    await c.run(`CREATE OR REPLACE TEMP TABLE data_lines AS ${dataLinesSql(batch, headerLine())}`);
    await Promise.all(batch.map((chunk) => rm(chunk.path, { force: true })));
    await c.run(`CREATE OR REPLACE TEMP TABLE cand AS
      WITH parsed AS (${format.parse})
      SELECT ${[...LINE_COLUMNS, ...keep].join(', ')}, reason, CASE WHEN reason IS NOT NULL THEN raw END AS raw
      FROM (SELECT *, ${utcDate('ts')} AS date,
              coalesce(err, CASE WHEN ts IS NULL THEN ${TS_REASON}
                                 ${rule.table === 'readings' ? `WHEN device IS NULL THEN 'device: missing'` : ''}
                                 ${checks.join('\n')} END) AS reason
            FROM (SELECT *${select(converted)}
                  FROM (SELECT n, raw, err${select(perLine)} FROM parsed)))`);
    await c.run('DROP TABLE data_lines');
    await c.run(
      `INSERT INTO out_rejects
       SELECT $source_key, n, raw, reason, ${factory} FROM cand WHERE reason IS NOT NULL`,
      { source_key: input.sourceKey },
    );
    const stats = await c.runAndReadAll(`SELECT count(*), count(*) FILTER (reason IS NULL),
        ${readingCount},
        min(ts) FILTER (reason IS NULL), max(ts) FILTER (reason IS NULL)
      FROM cand`);
    const [data, loaded, readingRows, lo, hi] = stats.getRows()[0] as [
      bigint,
      bigint,
      bigint | number | null,
      DuckDBTimestampTZValue | null,
      DuckDBTimestampTZValue | null,
    ];
    totals.data += Number(data);
    totals.loaded += Number(loaded);
    totals.readings += Number(readingRows ?? 0);
    if (lo && (!minTs || lo.micros < minTs.micros)) minTs = lo;
    if (hi && (!maxTs || hi.micros > maxTs.micros)) maxTs = hi;
    if (Number(loaded) > 0) await writeByDate(rule.table, outputSql, stem);
  }

  // Lines rejected by the byte pass (invalid UTF-8, NUL bytes, over-long) — appended, never spliced as
  // SQL. The splitter wrote each of them as an empty line, so they fell out with the blank lines.
  if (split.rejects.length > 0) {
    const appender = await c.createAppender('out_rejects', 'main', 'temp');
    for (const r of split.rejects) {
      appender.appendVarchar(input.sourceKey);
      appender.appendBigInt(BigInt(r.line));
      appender.appendVarchar(r.raw);
      appender.appendVarchar(r.reason);
      appender.appendVarchar(input.factory);
      appender.endRow();
    }
    appender.closeSync();
  }
  const total = split.totalLines;
  const headerLines = headerLine() === undefined ? 0 : 1;
  const readings = totals.readings;
  const events = rule.table === 'events' ? totals.loaded : 0;
  const reasons = (
    await c.runAndReadAll(
      `SELECT regexp_extract(reason, '^[^:"(]*') AS r, count(*) FROM out_rejects GROUP BY ALL ORDER BY 2 DESC`,
    )
  ).getRows();
  const rejected = reasons.reduce((sum, [, n]) => sum + Number(n), 0);
  if (rejected > 0) {
    await copy(
      'rejects',
      'SELECT * FROM out_rejects ORDER BY source_line',
      `rejects/factory=${input.factory}/${input.id}.parquet`,
    );
  }

  return {
    lines: {
      total,
      loaded: totals.loaded,
      rejected,
      blank: total - totals.data - headerLines - split.rejects.length,
      header: headerLines,
    },
    rows: { readings, events },
    rejectReasons: Object.fromEntries(reasons.map(([r, n]) => [String(r).trim() || 'other', Number(n)])),
    files,
    minTs: minTs ? new Date(Number(minTs.micros / 1000n)).toISOString() : undefined,
    maxTs: maxTs ? new Date(Number(maxTs.micros / 1000n)).toISOString() : undefined,
  };
}

/** The UTC calendar day of a TIMESTAMPTZ, as the `date=` partition value (`2024-01-02`). */
function utcDate(ts: string): string {
  // Whole days since the epoch: 4× cheaper than the calendar conversion, which stays for instants
  // before 1970 (integer division truncates toward zero) and infinities (epoch_us is NULL).
  return `CASE WHEN epoch_us(${ts}) >= 0 THEN CAST(DATE '1970-01-01' + CAST(epoch_us(${ts}) // 86400000000 AS INTEGER) AS VARCHAR)
    ELSE CAST(CAST(timezone('UTC', ${ts}) AS DATE) AS VARCHAR) END`;
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
