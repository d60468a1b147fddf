import { mkdir, readdir, rm } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import type { DuckDBConnection, DuckDBTimestampTZValue } from '@duckdb/node-api';
import type { FieldRef, Mapping } from '../contracts/factories.js';
import { dataKey, dataPath, rejectsKey } from '../contracts/keys.js';
import { severityNameSql } from '../contracts/severity.js';
import { columnsAt, type DataTable, selectList } from '../contracts/tables.js';
import { sqlString } from '../core/duckdb.js';
import { type FormatSql, formatSql, severityFor } from './formats.js';
import type { LineChunk, SplitResult } from './line-splitter.js';
import { BLANK, buildRecords } from './records.js';
import { mappedFields, type ResolvedRule } from './rule.js';
import { BAD_OFFSET, type TimeContext, timestampSql } from './timestamps.js';

/**
 * Parses, validates and normalizes one split file inside DuckDB, and writes the Parquet outputs.
 * Every line ends in exactly one bucket: in a loaded record, in a rejected record (with a reason),
 * blank, or the header.
 *
 * The file goes through in batches of chunks (32 MB of text), so memory does not grow with the file.
 * Per batch, two tables are materialized, each once: `data_lines (n, raw, lines)` — the records (the
 * non-blank lines, or for a multiline rule the lines joined into records) with the number of their
 * first line — and `cand`, one row per record with its parsed, converted columns and `reason` (NULL
 * when the record loads; the raw text is kept only for rejected ones). Outputs, counts and rejects are
 * scans of `cand`. (An earlier version materialized five tables over the whole file, raw text in three
 * of them, and was 2–3× slower: the README's benchmark section has the before/after.)
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
  /** Zone for naive times, year for year-less ones. */
  time: TimeContext;
  /** Timestamps outside this window are rejected as implausible. */
  window: { notBefore: Date; notAfter: Date };
  /** The raw object's creation time (`ts: { from: objectTime }`). */
  objectTime: Date;
  /** The day the raw key names, if it names one (`ts: { from: keyDate }`). */
  keyDate: string | undefined;
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
  kind: DataTable | 'rejects';
  /** Where it goes in the lake (contracts/keys.ts). */
  key: string;
  path: string;
}

export interface NormalizeResult {
  lines: LineCounts;
  rows: { readings: number; events: number };
  /** Rejected lines per reason (the reason's field part: `ts`, `value`, `invalid JSON`…). */
  rejectReasons: Record<string, number>;
  /** Records that spanned more than one line, loaded or not. */
  multilineRecords: number;
  files: OutputFile[];
  minTs?: string;
  maxTs?: string;
}

interface RefContext {
  keyFields: Record<string, string | undefined>;
  objectTime: Date;
  keyDate: string | undefined;
}

function refSql(format: FormatSql, ref: FieldRef | undefined, ctx: RefContext): string | undefined {
  if (ref === undefined) return undefined;
  // One field: extracted per line, trimmed only when it needs it. The rest are constants or joins.
  if (typeof ref === 'string') return trimmedSql(format.field(ref));
  let expr: string;
  if (Array.isArray(ref)) expr = `concat_ws(' ', ${ref.map((r) => format.field(r)).join(', ')})`;
  else if ('const' in ref) expr = sqlString(ref.const);
  else if ('from' in ref) {
    const v = ref.from === 'objectTime' ? ctx.objectTime.toISOString() : ctx.keyDate;
    if (v === undefined) return 'CAST(NULL AS VARCHAR)';
    expr = sqlString(v);
  } else {
    const v = ctx.keyFields[ref.fromKey];
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

/** Wide rows with up to this many metrics keep a column per metric; more go as lists (see normalize). */
const COLUMNS_PER_METRIC_MAX = 64;

/** Months a batch may span and still be written one COPY per month (see writeByMonth). */
const COPIES_PER_MONTH_MAX = 8;

/** The columns of `cand` that every table has, ahead of its own. */
const LINE_COLUMNS = ['n', 'lines', 'ts', 'ts_raw', 'device', 'date', 'attributes'];

/**
 * SQL over a batch of chunks yielding every non-blank line as `(n, raw)`, without its carriage return
 * (with `keepBlank`, every line: the records step drops the blank lines that are not inside a record;
 * the empty string after a chunk's final newline is not a line, nor is the empty line the byte pass
 * wrote for a line it rejected — listed in `byte_rejected`).
 * Each chunk file holds whole lines, ends with a newline and is named after its first line's number.
 * Blank means nothing but ASCII spaces (as `isBlank` in the splitter); the cheap tests go first (this
 * runs once per line, on one thread: see below).
 */
function dataLinesSql(batch: LineChunk[], header: number | undefined, keepBlank = false): string {
  if (batch.length === 0) return 'SELECT CAST(NULL AS BIGINT) AS n, CAST(NULL AS VARCHAR) AS raw WHERE false';
  const files = `[${batch.map((ch) => sqlString(ch.path)).join(', ')}]`;
  return `SELECT n, raw FROM (
      SELECT first + i - 1 AS n, CASE WHEN suffix(line, chr(13)) THEN rtrim(line, chr(13)) ELSE line END AS raw, i, len_s
      FROM (SELECT first, unnest(s) AS line, generate_subscripts(s, 1) AS i, len(s) AS len_s
            FROM (SELECT CAST(regexp_extract(filename, 'chunk-(\\d+)\\.txt$', 1) AS BIGINT) AS first,
                         string_split(content, chr(10)) AS s
                  FROM read_text(${files}))))
    WHERE ${keepBlank ? 'i < len_s AND n NOT IN (SELECT n FROM byte_rejected)' : `NOT ${BLANK}`}${header === undefined ? '' : ` AND n <> ${header}`}`;
}

/** A reject reason for an unparseable or missing timestamp. */
const TS_REASON = `CASE WHEN ts_raw IS NULL THEN 'ts: missing'
  WHEN regexp_matches(ts_raw, '${BAD_OFFSET}') THEN 'ts: UTC offset out of range (beyond ±14:00) in "' || ts_raw || '"'
  ELSE 'ts: cannot parse timestamp "' || ts_raw || '"' END`;

/** A reject reason's field part (`ts`, `value`, `invalid JSON`), by which the manifest counts them. */
const REASON_KEY = /^[^:"(]*/;

/** The longest rejected record kept whole in the rejects (the raw object keeps all of it). */
const REJECT_KEEP_CHARS = 64 * 1024;

export async function normalize(c: DuckDBConnection, input: NormalizeInput): Promise<NormalizeResult> {
  const { split, rule } = input;
  const format = formatSql(rule, input.time);
  const refCtx: RefContext = {
    keyFields: fromKeyValues(rule.map, input.sourceKey),
    objectTime: input.objectTime,
    keyDate: input.keyDate,
  };
  const ref = (r: keyof Mapping) => refSql(format, rule.map[r], refCtx);
  const factory = sqlString(input.factory);
  const none = 'CAST(NULL AS VARCHAR)';

  // The timestamp is the format's own (syslog) or converted from the mapped field's text, once that
  // text is a column of its own (`ts_raw`): `auto` tries several conversions on it.
  const tsRef = ref('ts');
  const tsOwn = format.ts && !rule.map.ts ? format.ts : undefined;
  const tsConverted = tsOwn
    ? undefined
    : tsRef
      ? timestampSql('ts_raw', rule.timestamp.format, {
          ...input.time,
          timeZone: rule.timestamp.timezone ?? input.time.timeZone,
        })
      : 'CAST(NULL AS TIMESTAMPTZ)';
  const device = ref('device') ?? sqlString(input.defaultDevice);
  const used = mappedFields(rule.map);

  // One pass over the records: parse, map, convert and decide each record's fate (`reason` is NULL
  // for a loaded one). Field expressions yield NULL on a record that did not parse (see FormatSql).
  // The raw text is kept only for rejected records. Per table:
  let columns: [name: string, sql: string][]; // its own columns, computed per parsed record
  let converted: [name: string, sql: string][] = []; // conversions of those columns
  let keep: string[]; // of those, the ones `cand` keeps
  let checks: string[]; // reject reasons in priority order (CASE branches), after the timestamp
  let outputSql: string; // the output rows, selected from the loaded records of `cand`
  let readingCount = '0'; // SQL over `cand`: the readings its loaded records make
  const common = {
    ts: 'ts',
    factory,
    device: 'device',
    source_key: '$source_key',
    source_line: 'n',
    date: 'date',
    attributes: 'attributes',
  };
  const readingColumns = (metric: string, value: string, unit: string) =>
    selectList('readings', columnsAt('readings', 'normalized'), { ...common, metric, value, unit });
  const toDouble = (x: string) =>
    `TRY_CAST(${rule.csv?.decimalComma ? `replace(${x}, ',', '.')` : x} AS DOUBLE)`;
  if (rule.table === 'readings' && rule.wide && rule.wide.length <= COLUMNS_PER_METRIC_MAX) {
    const metrics = rule.wide;
    for (const m of metrics) used.add(m.field);
    // One raw and one numeric column per metric (r1, v1, …): validated per line, unnested on output.
    columns = metrics.map((m, i) => [`r${i + 1}`, trimmedSql(format.field(m.field))]);
    converted = metrics.map((_, i) => [`v${i + 1}`, toDouble(`r${i + 1}`)]);
    keep = metrics.map((_, i) => `v${i + 1}`);
    checks =
      metrics.length === 0
        ? [`WHEN true THEN 'no metric columns'`]
        : [
            `WHEN ${metrics.map((_, i) => `r${i + 1} IS NULL`).join(' AND ')} THEN 'value: no metric value on the line'`,
            ...metrics.map(
              (m, i) =>
                `WHEN r${i + 1} IS NOT NULL AND (v${i + 1} IS NULL OR NOT isfinite(v${i + 1})) THEN ${sqlString(`value: ${m.metric} is not a number: "`)} || r${i + 1} || '"'`,
            ),
          ];
    const items = metrics.map(
      (m, i) =>
        `{'metric': ${sqlString(m.metric)}, 'value': v${i + 1}, 'unit': ${m.unit === undefined ? none : sqlString(m.unit)}}`,
    );
    readingCount = metrics.length
      ? `sum(${metrics.map((_, i) => `(v${i + 1} IS NOT NULL)::BIGINT`).join(' + ')}) FILTER (reason IS NULL)`
      : '0';
    outputSql = `SELECT ${readingColumns('m.metric', 'm.value', 'm.unit')}
      FROM (SELECT ts, device, n, date, attributes, unnest([${items.join(', ') || 'NULL'}]) AS m FROM cand WHERE reason IS NULL)
      WHERE m.value IS NOT NULL`;
  } else if (rule.table === 'readings' && rule.wide) {
    const metrics = rule.wide;
    for (const m of metrics) used.add(m.field);
    // Past a few dozen metrics, the metric columns as lists (one raw and one numeric value per metric):
    // one expression however many columns the file has — 10,000 columns made 10,000 expressions, and
    // a condition nested past DuckDB's depth limit. Unnested on output, in step with the metric names
    // and units. (A narrow file keeps a column per metric: lists cost it a quarter more.)
    const names = `[${metrics.map((m) => sqlString(m.metric)).join(', ')}]::VARCHAR[]`;
    const units = `[${metrics.map((m) => (m.unit === undefined ? 'NULL' : sqlString(m.unit))).join(', ')}]::VARCHAR[]`;
    columns = [
      ['mr', `list_transform(${format.values(metrics.map((m) => m.field))}, x -> ${trimmedSql('x')})`],
    ];
    converted = [['mv', `list_transform(mr, x -> ${toDouble('x')})`]];
    keep = ['mv'];
    const bad = `list_position(list_transform(mr, (x, i) -> x IS NOT NULL AND (mv[i] IS NULL OR NOT isfinite(mv[i]))), true)`;
    checks = [
      `WHEN list_count(mr) = 0 THEN 'value: no metric value on the line'`,
      // The position is looked for only on a line that has a bad value (a count or sum says so).
      `WHEN (list_count(mr) <> list_count(mv) OR NOT isfinite(coalesce(list_sum(mv), 0))) AND ${bad} > 0
         THEN 'value: ' || (${names})[${bad}] || ' is not a number: "' || mr[${bad}] || '"'`,
    ];
    readingCount = 'sum(list_count(mv)) FILTER (reason IS NULL)';
    outputSql = `SELECT ${readingColumns('metric', 'value', 'unit')}
      FROM (SELECT ts, device, n, date, attributes,
              unnest(${names}) AS metric, unnest(mv) AS value, unnest(${units}) AS unit
            FROM cand WHERE reason IS NULL)
      WHERE value IS NOT NULL`;
  } else if (rule.table === 'readings') {
    columns = [
      ['metric', ref('metric') ?? none],
      ['value_raw', ref('value') ?? none],
      ['unit', ref('unit') ?? none],
    ];
    converted = [['value', toDouble('value_raw')]];
    keep = ['metric', 'value', 'unit'];
    checks = [
      `WHEN metric IS NULL THEN 'metric: missing'`,
      `WHEN value_raw IS NULL THEN 'value: no metric value on the line'`,
      `WHEN value IS NULL OR NOT isfinite(value) THEN 'value: ' || metric || ' is not a number: "' || value_raw || '"'`,
    ];
    readingCount = 'count(*) FILTER (reason IS NULL)';
    outputSql = `SELECT ${readingColumns('metric', 'value', 'unit')}
      FROM cand WHERE reason IS NULL`;
  } else {
    const code =
      ref('code') ??
      (rule.codePattern && ref('message')
        ? `nullif(regexp_extract(${ref('message')}, ${sqlString(rule.codePattern)}, 1), '')`
        : none);
    const severity = severityFor(format, ref('severity'));
    columns = [
      ['severity', severity.value],
      ['severity_raw', severity.raw],
      ['code', code],
      ['component', ref('component') ?? none],
      ['message', `coalesce(${ref('message') ?? 'NULL'}, raw)`],
    ];
    keep = columns.map(([name]) => name);
    checks = [];
    outputSql = `SELECT ${selectList('events', columnsAt('events', 'normalized'), {
      ...common,
      severity: 'severity',
      severity_name: severityNameSql('severity'),
      severity_raw: 'severity_raw',
      code: 'code',
      component: 'component',
      message: 'message',
      source_lines: 'lines',
    })}
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
    ['attributes', format.attributes(used)],
    ...columns,
  ];
  if (tsConverted) converted = [['ts', tsConverted], ...converted];
  const select = (cols: [string, string][]) => cols.map(([name, sql]) => `, ${sql} AS ${name}`).join('\n');
  // Implausible instants (a clock reset to 1900, `infinity`, a year typed wrong) are rejected with
  // the value as read: they would otherwise land in partitions no one looks at.
  const lower = `TIMESTAMPTZ '${input.window.notBefore.toISOString()}'`;
  const upper = `TIMESTAMPTZ '${input.window.notAfter.toISOString()}'`;
  const windowText = `${input.window.notBefore.toISOString()} … ${input.window.notAfter.toISOString()}`;
  const windowReason = `'ts: "' || ts_raw || '" is ' || CAST(timezone('UTC', ts) AS VARCHAR) || ' UTC, outside the plausible window ${windowText}'`;
  // Rejects go to a Parquet part per batch, not a table: a file that is mostly rejects (a rule that
  // does not fit it, a clock a year off) then takes no more memory than one that loads.
  const rejectColumns = selectList('rejects', columnsAt('rejects', 'normalized'), {
    source_key: '$source_key',
    source_line: 'n',
    raw: `left(raw, ${REJECT_KEEP_CHARS})`,
    reason: 'reason',
    factory,
    source_lines: 'lines',
  });
  const rejectParts: { path: string; stem: string }[] = [];
  const reasonLines = new Map<string, number>();
  const countReason = (reason: string, lines: number) => {
    const key = REASON_KEY.exec(reason)![0].trim() || 'other';
    reasonLines.set(key, (reasonLines.get(key) ?? 0) + lines);
  };
  const totals = { data: 0, loaded: 0, records: 0, readings: 0, multiline: 0 };
  let minTs: DuckDBTimestampTZValue | undefined;
  let maxTs: DuckDBTimestampTZValue | undefined;
  const files: OutputFile[] = [];
  const params = (sql: string) => (sql.includes('$source_key') ? { source_key: input.sourceKey } : undefined);
  // zstd at level 1: as small as the default level 3 on this data (measured: 17.1 vs 17.2 MB for 2.4M
  // readings) and a quarter faster to write.
  const parquet = 'FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1';
  const copy = async (kind: OutputFile['kind'], source: string, key: string, relativePath: string) => {
    const path = join(input.outDir, relativePath);
    await mkdir(dirname(path), { recursive: true });
    await c.run(`COPY (${source}) TO ${sqlString(path)} (${parquet})`, params(source));
    files.push({ kind, path, key });
  };
  // Loaded rows go to one file per UTC month (contracts/keys.ts): a file of a day or two is one object,
  // a year-long backfill a dozen, not 366. Most files span one month or two: one COPY per month (each a
  // filtered scan of `cand`) is faster than DuckDB's PARTITION_BY, which is kept for files that span
  // many months (a clock gone wrong) or dates that do not make a plain path.
  const writeByMonth = async (table: DataTable, source: string, stem: string) => {
    const months = (
      await c.runAndReadAll('SELECT DISTINCT substr(date, 1, 7) FROM cand WHERE reason IS NULL ORDER BY 1')
    )
      .getRows()
      .map(([m]) => String(m));
    if (months.length <= COPIES_PER_MONTH_MAX && months.every((m) => /^\d{4}-\d{2}$/.test(m))) {
      for (const month of months) {
        const partition = { kind: 'month', value: month } as const;
        await copy(
          table,
          `SELECT * FROM (${source}) WHERE starts_with(date, ${sqlString(month)})`,
          dataKey({ layer: 'normalized', table, factory: input.factory, partition, name: stem }),
          dataPath(table, input.factory, partition, stem),
        );
      }
      return;
    }
    const dir = join(input.outDir, `${table}-months`);
    await mkdir(dir, { recursive: true });
    const known = new Set(files.map((f) => f.path));
    // Partitioned by month alone (the factory is the file's): `month` is not written into the files,
    // every canonical column is.
    await c.run(
      `COPY (SELECT *, substr(date, 1, 7) AS month FROM (${source})) TO ${sqlString(dir)}
      (${parquet}, PARTITION_BY (month), FILENAME_PATTERN ${sqlString(`${stem}_{i}`)}, OVERWRITE_OR_IGNORE true)`,
      params(source),
    );
    for (const path of await walk(dir)) {
      if (known.has(path)) continue;
      // DuckDB wrote `month=<m>/<name>.parquet`: the layout of contracts/keys.ts below the factory.
      const m = /^month=([^/]+)\/([^/]+)\.parquet$/.exec(relative(dir, path));
      if (!m) throw new Error(`unexpected partitioned output ${relative(dir, path)}`);
      const partition = { kind: 'month', value: m[1]! } as const;
      files.push({
        kind: table,
        path,
        key: dataKey({ layer: 'normalized', table, factory: input.factory, partition, name: m[2]! }),
      });
    }
  };

  // The records of a multiline rule may run past the end of a batch: the last record of each batch is
  // held back (`carry`) and joined to the next; it is ended by the round after the last batch.
  const records = rule.records;
  if (records) await c.run('CREATE OR REPLACE TEMP TABLE carry (n BIGINT, raw VARCHAR)');
  let quoteOpen = false;
  // Lines the byte pass rejected, for the CSV records step, which keeps blank lines (see dataLinesSql).
  const keepBlank = records?.mode === 'quotes';
  if (keepBlank) await c.run('CREATE OR REPLACE TEMP TABLE byte_rejected (n BIGINT)');
  let byteRejected = 0;

  // The file is processed batch by batch as the splitter writes them, so that memory and temporary disk
  // are bounded by the batch, not the file, and parsing overlaps reading. Chunk boundaries depend on the
  // content only, so a retry makes the same batches and the same output names: `<id>` for the first
  // batch, `<id>-<b>` for the others.
  let b = 0;
  const round = async (batch: LineChunk[], last: boolean) => {
    const stem = b === 0 ? input.id : `${input.id}-${b}`;
    b++;
    // The data lines are materialized first: read_text yields one row per chunk, so a pipeline fed by
    // it directly would run on one thread; a scan of the table runs on all of them.
    // A CSV field may hold a blank line: those are kept until the records are known.
    if (keepBlank && split.rejects.length > byteRejected) {
      // (The splitter has numbered and rejected every line of a batch before handing it on.)
      const appender = await c.createAppender('byte_rejected', 'main', 'temp');
      for (const r of split.rejects.slice(byteRejected)) {
        appender.appendBigInt(BigInt(r.line));
        appender.endRow();
      }
      appender.closeSync();
      byteRejected = split.rejects.length;
    }
    const lines = dataLinesSql(batch, headerLine(), keepBlank);
    if (records) {
      quoteOpen = await buildRecords(c, lines, records, rule.pattern?.regex, last, quoteOpen);
    } else {
      await c.run(`CREATE OR REPLACE TEMP TABLE data_lines AS SELECT n, raw, 1 AS lines FROM (${lines})`);
    }
    await Promise.all(batch.map((chunk) => rm(chunk.path, { force: true })));
    await c.run(`CREATE OR REPLACE TEMP TABLE cand AS
      WITH parsed AS (${format.parse})
      SELECT ${[...LINE_COLUMNS, ...keep].join(', ')}, reason, CASE WHEN reason IS NOT NULL THEN raw END AS raw
      FROM (SELECT *, ${utcDate('ts')} AS date,
              coalesce(err, CASE WHEN ts IS NULL THEN ${TS_REASON}
                                 WHEN NOT (ts >= ${lower} AND ts <= ${upper}) THEN ${windowReason}
                                 ${rule.table === 'readings' ? `WHEN device IS NULL THEN 'device: missing'` : ''}
                                 ${checks.join('\n')} END) AS reason
            FROM (SELECT *${select(converted)}
                  FROM (SELECT n, raw, lines, err${select(perLine)} FROM parsed)))`);
    await c.run('DROP TABLE data_lines');
    // Per reason's field part, as countReason keys them (the same pattern, in SQL).
    const rejectedHere = (
      await c.runAndReadAll(
        `SELECT regexp_extract(reason, ${sqlString(REASON_KEY.source)}), sum(lines) FROM cand WHERE reason IS NOT NULL GROUP BY ALL`,
      )
    ).getRows() as [string, bigint | number][];
    if (rejectedHere.length > 0) {
      for (const [reason, lines] of rejectedHere) countReason(reason, Number(lines));
      const part = join(input.outDir, '..', `rejects-${b}.parquet`);
      await c.run(
        // `cand` is in line order, unless records were joined (those come after the single lines). A
        // sort of a whole batch of rejects is avoided where it is not needed: it may not fit in memory.
        `COPY (SELECT ${rejectColumns} FROM cand WHERE reason IS NOT NULL${records ? ' ORDER BY n' : ''}) TO ${sqlString(part)} (${parquet})`,
        { source_key: input.sourceKey },
      );
      rejectParts.push({ path: part, stem });
    }
    const stats =
      await c.runAndReadAll(`SELECT coalesce(sum(lines), 0), coalesce(sum(lines) FILTER (reason IS NULL), 0),
        count(*) FILTER (reason IS NULL), ${readingCount}, count(*) FILTER (lines > 1),
        min(ts) FILTER (reason IS NULL), max(ts) FILTER (reason IS NULL)
      FROM cand`);
    const [data, loaded, loadedRecords, readingRows, multi, lo, hi] = stats.getRows()[0] as [
      bigint | number,
      bigint | number,
      bigint | number,
      bigint | number | null,
      bigint | number,
      DuckDBTimestampTZValue | null,
      DuckDBTimestampTZValue | null,
    ];
    totals.data += Number(data);
    totals.loaded += Number(loaded);
    totals.records += Number(loadedRecords);
    totals.readings += Number(readingRows ?? 0);
    totals.multiline += Number(multi);
    if (lo && (!minTs || lo.micros < minTs.micros)) minTs = lo;
    if (hi && (!maxTs || hi.micros > maxTs.micros)) maxTs = hi;
    if (Number(loaded) > 0) await writeByMonth(rule.table, outputSql, stem);
  };
  for await (const batch of input.batches) await round(batch, false);
  if (records) await round([], true);

  // Lines rejected by the byte pass (invalid UTF-8, NUL bytes, over-long) — appended, never spliced as
  // SQL. The splitter wrote each of them as an empty line, so they fell out with the blank lines.
  if (split.rejects.length > 0) {
    await c.run(
      'CREATE OR REPLACE TEMP TABLE byte_rejects (n BIGINT, raw VARCHAR, reason VARCHAR, lines INTEGER)',
    );
    const appender = await c.createAppender('byte_rejects', 'main', 'temp');
    for (const r of split.rejects) {
      appender.appendBigInt(BigInt(r.line));
      appender.appendVarchar(r.raw);
      appender.appendVarchar(r.reason);
      appender.appendInteger(1);
      appender.endRow();
      countReason(r.reason, 1);
    }
    appender.closeSync();
  }
  const total = split.totalLines;
  const headerLines = headerLine() === undefined ? 0 : 1;
  // An event per loaded record (lines are counted above, records here).
  const events = rule.table === 'events' ? totals.records : 0;
  const reasons = [...reasonLines].sort((a, b) => b[1] - a[1]);
  const rejected = reasons.reduce((sum, [, n]) => sum + n, 0);
  // A file with rejects in one batch (most) gets one rejects file, in line order, the byte pass's rejects
  // sorted in. A file with rejects in several batches keeps a file per batch, named like its data
  // files, and one for the byte pass's: merging them would hold every reject of a big file in memory
  // at once (a 1 GB file of rejects did not fit in the function's). The warehouse loads them all.
  const byteRejects = `SELECT ${rejectColumns} FROM byte_rejects`;
  const rejectsPath = (stem: string) => `rejects/factory=${input.factory}/${stem}.parquet`;
  if (rejectParts.length <= 1 && (rejectParts.length > 0 || split.rejects.length > 0)) {
    const sources = [
      ...rejectParts.map((p) => `SELECT * FROM read_parquet(${sqlString(p.path)})`),
      ...(split.rejects.length > 0 ? [byteRejects] : []),
    ];
    await copy(
      'rejects',
      `SELECT * FROM (${sources.join(' UNION ALL ')}) ORDER BY source_line`,
      rejectsKey(input.factory, input.id),
      rejectsPath(input.id),
    );
  } else if (rejectParts.length > 1) {
    for (const p of rejectParts) {
      files.push({ kind: 'rejects', path: p.path, key: rejectsKey(input.factory, p.stem) });
    }
    if (split.rejects.length > 0) {
      const stem = `${input.id}-lines`;
      await copy(
        'rejects',
        `${byteRejects} ORDER BY source_line`,
        rejectsKey(input.factory, stem),
        rejectsPath(stem),
      );
    }
  }

  return {
    lines: {
      total,
      loaded: totals.loaded,
      rejected,
      blank: total - totals.data - headerLines - split.rejects.length,
      header: headerLines,
    },
    rows: { readings: totals.readings, events },
    rejectReasons: Object.fromEntries(reasons),
    multilineRecords: totals.multiline,
    files,
    minTs: minTs ? new Date(Number(minTs.micros / 1000n)).toISOString() : undefined,
    maxTs: maxTs ? new Date(Number(maxTs.micros / 1000n)).toISOString() : undefined,
  };
}

/** The UTC calendar day of a TIMESTAMPTZ, the `date` column (`2024-01-02`; its month is the partition). */
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
