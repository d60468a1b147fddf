import type { FileRule, Mapping } from '../contracts/factories.js';
import { namedGroups } from '../contracts/regex.js';
import type { DataTable } from '../contracts/tables.js';
import { templateToRegex } from '../contracts/template.js';

/** One column of a wide row that becomes a reading: the field, and the metric and unit it gives. */
export interface WideMetric {
  field: string;
  metric: string;
  unit?: string;
}

/**
 * How lines join into records. `start`: an RE2 pattern; a line that matches starts a record, the lines
 * after it that do not join it. `template`: the rule's own pattern starts a record, and a line that
 * does not match it but looks like a continuation (indented, `at …`, `Caused by:`, `... 3 more`, an
 * exception class line) joins the record before it. `quotes`: a CSV record goes on while a quoted field
 * is open.
 */
export interface Records {
  mode: 'start' | 'template' | 'quotes';
  start?: string;
  maxLines: number;
  maxBytes: number;
}

/**
 * A file rule with everything decided: the format (detected when the config says `auto` or has no rule
 * for the file), the table, and a complete mapping from field names to canonical columns.
 */
export type ResolvedRule = {
  format: 'jsonl' | 'csv' | 'syslog' | 'template' | 'regex';
  table: DataTable;
  map: Mapping;
  /** Wide rows: each of these fields is one reading. */
  wide?: WideMetric[];
  records?: Records;
  timestamp: { format: string; timezone?: string };
  codePattern?: string;
  /** Known field names (JSON keys in the sample, CSV header, regex groups), in order. */
  fields: string[];
  /** `delimiter: 'whitespace'` splits on runs of spaces and tabs. */
  csv?: { delimiter: string; header: boolean; decimalComma: boolean };
  /** RE2 pattern and its capture-group names in positional order. */
  pattern?: { regex: string; groups: string[] };
  /** How the rule was decided, for the manifest. */
  detected: boolean;
};

const NAMES: Record<keyof Mapping, string[]> = {
  ts: [
    'ts',
    'timestamp',
    'time',
    '@timestamp',
    'datetime',
    'date_time',
    'event_time',
    'eventtime',
    'logtime',
    't',
  ],
  device: [
    'device',
    'device_id',
    'deviceid',
    'machine',
    'machine_id',
    'asset',
    'asset_id',
    'equipment',
    'host',
    'hostname',
    'node',
  ],
  metric: ['metric', 'metric_name', 'sensor', 'signal', 'tag', 'channel', 'measurement', 'name'],
  value: ['value', 'val', 'reading', 'v'],
  unit: ['unit', 'units', 'uom'],
  severity: ['level', 'severity', 'lvl', 'log_level', 'loglevel', 'sev', 'priority'],
  code: ['code', 'error_code', 'errorcode', 'err_code', 'alarm_code', 'event_code', 'alarm'],
  component: ['component', 'module', 'logger', 'subsystem', 'service', 'app', 'process'],
  message: ['message', 'msg', 'content', 'text', 'log', 'description'],
};

/** Maps field names onto canonical columns by common names (case-insensitive); `explicit` wins. */
export function autoMap(fields: readonly string[], explicit: Mapping): Mapping {
  const byLower = new Map(fields.map((f) => [f.toLowerCase(), f]));
  const map: Mapping = {};
  // Separate date and time fields (as in most templated logs) make the timestamp together.
  if (byLower.has('date') && byLower.has('time')) map.ts = [byLower.get('date')!, byLower.get('time')!];
  for (const [column, names] of Object.entries(NAMES) as [keyof Mapping, string[]][]) {
    const hit = names.map((n) => byLower.get(n)).find((f) => f !== undefined);
    if (hit && !map[column]) map[column] = hit;
  }
  if (!map.ts && byLower.has('date')) map.ts = byLower.get('date')!;
  return { ...map, ...explicit };
}

/** Field names a mapping refers to. */
export function mappedFields(map: Mapping): Set<string> {
  const out = new Set<string>();
  for (const ref of Object.values(map)) {
    if (typeof ref === 'string') out.add(ref);
    else if (Array.isArray(ref)) for (const r of ref) out.add(r);
  }
  return out;
}

/** Splits one delimited line honouring double quotes (used on the header and the sample only). */
export function splitDelimited(line: string, delimiter: string): string[] {
  if (delimiter === WHITESPACE) return line.trim() === '' ? [''] : line.trim().split(/[ \t]+/);
  const out: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"' && field === '') quoted = true;
    else if (line.startsWith(delimiter, i)) {
      out.push(field);
      field = '';
      i += delimiter.length - 1;
    } else field += ch;
  }
  out.push(field);
  return out;
}

export const WHITESPACE = 'whitespace';

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
export function isNumeric(text: string): boolean {
  return NUMBER.test(text.trim());
}

const FALLBACK_TEXT = namedGroups(
  String.raw`^(?P<ts>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)\s+(?:\[?(?P<level>[A-Za-z]+)\]?:?\s+)?(?P<message>.*)$`,
);

/**
 * Sample lines joined into CSV records: a line with an open quoted field goes on with the next (RFC
 * 4180 fields may hold line breaks), as the records SQL does, at most 50 lines per record.
 */
export function csvRecords(sample: readonly string[]): string[] {
  const out: string[] = [];
  let open: string[] = [];
  let quotes = 0;
  for (const line of sample) {
    open.push(line);
    quotes += line.split('"').length - 1;
    if (quotes % 2 === 0 || open.length >= 50) {
      out.push(open.join('\n'));
      open = [];
      quotes = 0;
    }
  }
  if (open.length) out.push(...open);
  return out;
}

/** Decides format, table and mapping for a file from its rule (if any) and its first lines. */
export function resolveRule(rule: FileRule | undefined, lines: readonly string[]): ResolvedRule {
  // Detection and the CSV header see records, so that a quoted field across lines does not hide a CSV.
  const wantsCsv =
    !rule || rule.format === 'auto' || (rule.format === 'csv' && rule.delimiter !== WHITESPACE);
  const sample = wantsCsv ? csvRecords(lines) : lines;
  const explicit = rule?.map ?? {};
  const base = {
    timestamp: rule?.timestamp ?? { format: 'auto' },
    codePattern: rule?.codePattern,
    detected: !rule || rule.format === 'auto',
  };
  const format = rule && rule.format !== 'auto' ? rule.format : detectFormat(lines);
  const tableOf = (fields: string[], map: Mapping, numeric: boolean): DataTable => {
    if (rule && rule.table !== 'auto') return rule.table;
    if (map.message || map.severity || map.code) return 'events';
    if ((map.metric && map.value) || numeric) return 'readings';
    return fields.length > 0 && numeric ? 'readings' : 'events';
  };

  switch (format) {
    case 'jsonl': {
      const fields: string[] = [];
      const numericFields = new Set<string>();
      let numeric = false;
      for (const line of lines) {
        try {
          const obj = JSON.parse(line) as unknown;
          if (obj && typeof obj === 'object' && !Array.isArray(obj)) {
            for (const [k, v] of Object.entries(obj)) {
              if (!fields.includes(k)) fields.push(k);
              if (typeof v === 'number') {
                numeric = true;
                numericFields.add(k);
              }
            }
          }
        } catch {
          // a bad sample line is rejected later, in SQL
        }
      }
      const map = autoMap(fields, explicit);
      const table = tableOf(fields, map, numeric);
      return {
        ...base,
        format,
        table,
        map: trimMap(map, table),
        fields,
        wide: wideFor(rule, map, table, fields, numericFields),
      };
    }
    case 'csv': {
      const delimiter = (rule?.format === 'csv' && rule.delimiter) || detectDelimiter(sample) || ',';
      const first = sample[0] !== undefined ? splitDelimited(sample[0], delimiter) : [];
      const declared = rule?.format === 'csv' ? rule.columns : undefined;
      const header =
        rule?.format === 'csv' ? rule.header && !declared : first.length > 0 && !first.some(isNumeric);
      const fields = uniqueNames(
        declared ?? (header ? first.map((f) => f.trim()) : first.map((_, i) => `column${i + 1}`)),
      );
      const rows = sample
        .slice(header ? 1 : 0)
        .map((l) => splitDelimited(l, delimiter))
        .filter((r) => r.length === fields.length);
      const decimalComma =
        rule?.format === 'csv' && rule.decimalComma !== undefined ? rule.decimalComma : delimiter === ';';
      const numericFields = new Set(
        fields.filter(
          (_, i) =>
            rows.length > 0 &&
            rows.every(
              (r) => r[i]!.trim() === '' || isNumeric(decimalComma ? r[i]!.replace(',', '.') : r[i]!),
            ),
        ),
      );
      const map = autoMap(fields, explicit);
      // With no device column by name, a lone text column (besides the timestamp) names the device.
      const used = mappedFields(map);
      const textFields = fields.filter((f) => !numericFields.has(f) && !used.has(f));
      if (!map.device && textFields.length === 1) map.device = textFields[0]!;
      const table = tableOf(fields, map, true);
      return {
        ...base,
        format,
        table,
        map: trimMap(map, table),
        fields,
        csv: { delimiter, header, decimalComma },
        wide: wideFor(rule, map, table, fields, numericFields),
        records: recordsFor(rule, delimiter === WHITESPACE ? undefined : 'quotes'),
      };
    }
    case 'syslog': {
      const fields = ['pri', 'ts', 'host', 'app', 'procid', 'msgid', 'sd', 'msg'];
      const map: Mapping = { device: 'host', component: 'app', message: 'msg', ...explicit };
      return { ...base, format, table: 'events', map, fields };
    }
    case 'template':
    case 'regex': {
      // A multiline record is its lines joined with \n: the pattern's last field must take newlines.
      const records = recordsFor(rule, rule?.format === 'template' ? 'template' : undefined);
      const pattern =
        rule?.format === 'template'
          ? templateToRegex(rule.template, { multiline: records !== undefined })
          : rule?.format === 'regex'
            ? namedGroups(records ? `(?s)${rule.pattern}` : rule.pattern)
            : FALLBACK_TEXT;
      const map = autoMap(pattern.groups, explicit);
      const table = tableOf(pattern.groups, map, false);
      return {
        ...base,
        format,
        table,
        map: trimMap(map, table),
        fields: pattern.groups,
        pattern,
        wide: wideFor(rule, map, table, pattern.groups),
        records,
      };
    }
  }
}

/**
 * How a rule's lines join into records: as its `multiline` says, else the format's default (`dflt`:
 * continuation lines for templates, quoted fields for CSV), or not at all (`multiline: false`).
 */
function recordsFor(rule: FileRule | undefined, dflt: Records['mode'] | undefined): Records | undefined {
  const spec = rule?.multiline;
  if (spec === false) return undefined;
  const limits = { maxLines: spec?.maxLines ?? 1000, maxBytes: spec?.maxBytes ?? 1024 * 1024 };
  if (spec?.start) return { mode: 'start', start: spec.start, ...limits };
  return dflt ? { mode: dflt, ...limits } : undefined;
}

/** Header names made unique (`a`, `a_2`) and never empty (`column3`): they are JSON keys and map keys. */
function uniqueNames(names: readonly string[]): string[] {
  const seen = new Set<string>();
  return names.map((raw, i) => {
    const base = raw === '' ? `column${i + 1}` : raw;
    let name = base;
    for (let k = 2; seen.has(name); k++) name = `${base}_${k}`;
    seen.add(name);
    return name;
  });
}

/** Readings only use ts/device/metric/value/unit; events only ts/device/severity/code/component/message. */
function trimMap(map: Mapping, table: DataTable): Mapping {
  const keep: (keyof Mapping)[] =
    table === 'readings'
      ? ['ts', 'device', 'metric', 'value', 'unit']
      : ['ts', 'device', 'severity', 'code', 'component', 'message'];
  return Object.fromEntries(Object.entries(map).filter(([k]) => keep.includes(k as keyof Mapping)));
}

/**
 * Wide rows (one reading per metric column) unless the rule or the data has metric + value fields.
 * `"*"` resolves to the fields the sample shows as numeric (all fields when that is unknown), less
 * those mapped to the timestamp or device. A field named `Name [unit]` or `Name (unit)` gives metric
 * `Name` in `unit`, unless `units` names the field's unit.
 */
function wideFor(
  rule: FileRule | undefined,
  map: Mapping,
  table: DataTable,
  fields: readonly string[],
  numeric?: ReadonlySet<string>,
): ResolvedRule['wide'] {
  if (table !== 'readings') return undefined;
  if (!rule?.wide && map.metric && map.value) return undefined;
  const spec = rule?.wide ?? { metrics: '*' as const, units: {} };
  const used = mappedFields({ ts: map.ts, device: map.device, unit: map.unit });
  const metrics =
    spec.metrics !== '*'
      ? spec.metrics
      : fields.filter((f) => !used.has(f) && (!numeric || numeric.size === 0 || numeric.has(f)));
  return metrics.map((field) => {
    const configured = spec.units[field];
    const suffixed = UNIT_SUFFIX.exec(field);
    if (configured !== undefined) return { field, metric: suffixed?.[1] ?? field, unit: configured };
    return suffixed
      ? { field, metric: suffixed[1]!, unit: (suffixed[2] ?? suffixed[3])! }
      : { field, metric: field };
  });
}

/** `Spindle temperature [°C]`, `Feed (mm/min)`: the name, then the unit in brackets or parentheses. */
const UNIT_SUFFIX = /^(.*\S)\s*(?:\[([^\]]+)\]|\(([^)]+)\))$/;

export function detectFormat(sample: readonly string[]): ResolvedRule['format'] {
  const lines = sample.slice(0, 20);
  if (lines.length === 0) return 'regex';
  const first = lines[0]!.trimStart();
  if (first.startsWith('{')) return 'jsonl';
  if (/^<\d{1,3}>/.test(first)) return 'syslog';
  if (detectDelimiter(csvRecords(lines))) return 'csv';
  return 'regex';
}

/** A delimiter that splits every sample line into the same number (≥ 2) of fields; the most fields wins. */
export function detectDelimiter(sample: readonly string[]): string | undefined {
  const lines = sample.slice(0, 20);
  if (lines.length === 0) return undefined;
  let best: { delimiter: string; count: number } | undefined;
  for (const delimiter of [',', ';', '\t', '|']) {
    // The most common field count must hold for at least 80% of the sample (bad lines are tolerated).
    const tally = new Map<number, number>();
    for (const l of lines) {
      const n = splitDelimited(l, delimiter).length;
      tally.set(n, (tally.get(n) ?? 0) + 1);
    }
    const [count, hits] = [...tally].sort((a, b) => b[1] - a[1])[0]!;
    if (count >= 2 && hits >= Math.ceil(lines.length * 0.6) && (!best || count > best.count))
      best = { delimiter, count };
  }
  return best?.delimiter;
}
