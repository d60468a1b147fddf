import { severitySql } from '../contracts/severity.js';
import { sqlString } from '../core/duckdb.js';
import { mappedFields, type ResolvedRule, WHITESPACE } from './rule.js';
import { type TimeContext, timestampSql } from './timestamps.js';

/**
 * How each input format is parsed inside DuckDB. `parse` is a SELECT over `data_lines(n, raw, lines)`
 * (a record: one line, or several joined with \n) that yields `n, raw, lines, err` (NULL when the
 * record parsed) plus the format's own columns; `field(name)` is the SQL for one named field of a
 * parsed record (VARCHAR, NULL when absent); `values(names)` the fields as one LIST (so that a file
 * of 10,000 columns is one expression, not 10,000); `attributes(used)` a JSON object of the fields the
 * mapping does not use. Formats may also supply the timestamp, severity and attributes directly when
 * the format itself defines them (syslog). All of it must be safe on a record that did not parse
 * (NULL, not an error): it is evaluated on every record, and the record's `err` decides.
 */
export interface FormatSql {
  parse: string;
  field(name: string): string;
  values(names: readonly string[]): string;
  /** Overrides the mapped timestamp: SQL yielding TIMESTAMPTZ, and the raw text for reject reasons. */
  ts?: { expr: string; raw: string };
  severity?: { value: string; raw: string };
  attributes(used: ReadonlySet<string>): string;
}

const NULL_JSON = 'CAST(NULL AS JSON)';

/** A JSON object of named VARCHAR fields, NULL when it would be empty. */
function jsonOf(names: readonly string[], values: string): string {
  if (names.length === 0) return NULL_JSON;
  // A MAP from two lists: one expression however many fields (json_object takes one argument each).
  return `CAST(to_json(map(${list(names)}, ${values})) AS JSON)`;
}

const RFC5424 = String.raw`^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[(?:[^\]\\]|\\.)*\])+) ?(.*)$`;
const RFC3164 = String.raw`^<(\d{1,3})>([A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}) (\S+) ([^:\[\s]+)(?:\[([^\]]*)\])?:? ?(.*)$`;
const SYSLOG_FIELDS = ['pri', 'ts', 'host', 'app', 'procid', 'msgid', 'sd', 'msg'];
const RFC3164_FIELDS = ['pri', 'ts', 'host', 'app', 'procid', 'msg'];

function jsonPath(name: string): string {
  return name.startsWith('$') ? name : `$."${name.replace(/"/g, '\\"')}"`;
}

function list(values: readonly string[]): string {
  return `[${values.map(sqlString).join(', ')}]`;
}

export function formatSql(rule: ResolvedRule, ctx: TimeContext): FormatSql {
  switch (rule.format) {
    case 'jsonl': {
      // Every field the mapping may ask for, extracted in one pass: json_extract_string with a list of
      // paths parses each line once (one call per field would parse it once per field).
      const names = [
        ...new Set([...rule.fields, ...mappedFields(rule.map), ...(rule.wide ?? []).map((m) => m.field)]),
      ];
      const index = new Map(names.map((n, i) => [n, i + 1]));
      const paths = `[${names.map((n) => sqlString(jsonPath(n))).join(', ')}]`;
      return {
        // `obj` is the line when it is a JSON object, else NULL: JSON functions never see a bad line.
        // A valid line that starts with `{` is an object; only other valid lines need json_type (which
        // parses the line again). CASE, not AND/OR: DuckDB may evaluate a conjunction's terms in any
        // order, and JSON functions raise on invalid JSON.
        parse: `SELECT n, raw, lines,
            CASE WHEN NOT ok THEN 'invalid JSON'
                 WHEN NOT is_object THEN 'not a JSON object (got ' || lower(json_type(raw)) || ')' END AS err,
            CASE WHEN is_object THEN raw END AS obj,
            CASE WHEN is_object THEN ${names.length ? `json_extract_string(raw, ${paths})` : '[]::VARCHAR[]'} END AS jf
          FROM (SELECT n, raw, lines, ok,
                  CASE WHEN NOT ok THEN false WHEN prefix(raw, '{') THEN true ELSE json_type(raw) = 'OBJECT' END AS is_object
                FROM (SELECT n, raw, lines, json_valid(raw) AS ok FROM data_lines))`,
        field: (name) => {
          const i = index.get(name);
          return i === undefined ? `json_extract_string(obj, ${sqlString(jsonPath(name))})` : `jf[${i}]`;
        },
        values: (fields) => `list_select(jf, [${fields.map((f) => index.get(f) ?? 0).join(', ')}])`,
        // The object less the keys the mapping took: a merge patch with null deletes them. It parses the
        // line again, so it runs only when the first lines show keys the mapping leaves (a key first seen
        // further down is then kept too; one seen nowhere in the sample is not looked for).
        attributes: (used) => {
          const drop = [...used].filter((f) => !f.startsWith('$'));
          if (!rule.fields.some((f) => !used.has(f))) return NULL_JSON;
          if (drop.length === 0) return 'CAST(obj AS JSON)';
          const patch = JSON.stringify(Object.fromEntries(drop.map((f) => [f, null])));
          return `CAST(nullif(json_merge_patch(obj, ${sqlString(patch)}), '{}') AS JSON)`;
        },
      };
    }
    case 'csv': {
      const { delimiter } = rule.csv!;
      const count = rule.fields.length;
      const index = new Map(rule.fields.map((f, i) => [f, i + 1]));
      const fieldsOf = {
        field: (name: string) => {
          const i = index.get(name);
          return i === undefined ? 'CAST(NULL AS VARCHAR)' : `f[${i}]`;
        },
        values: (fields: readonly string[]) =>
          `list_select(f, [${fields.map((f) => index.get(f) ?? 0).join(', ')}])`,
        attributes: (used: ReadonlySet<string>) => {
          const rest = rule.fields.filter((f) => !used.has(f));
          return jsonOf(rest, `list_select(f, [${rest.map((f) => index.get(f)).join(', ')}])`);
        },
      };
      if (delimiter === WHITESPACE) {
        // Runs of spaces and tabs; the line's leading and trailing ones are not fields.
        return {
          parse: `SELECT n, raw, lines,
              CASE WHEN len(f) <> ${count} THEN 'expected ${count} fields, got ' || len(f) END AS err, f
            FROM (SELECT n, raw, lines, string_split_regex(regexp_replace(raw, '^[ \t]+|[ \t]+$', '', 'g'), '[ \t]+') AS f
                  FROM data_lines)`,
          ...fieldsOf,
        };
      }
      const d = sqlString(delimiter);
      const dRe = delimiter.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');
      const fieldRe = sqlString(`("(?:[^"]|"")*"|[^${dRe}"]*)${dRe}`);
      const lineRe = sqlString(`(?:("(?:[^"]|"")*"|[^${dRe}"]*)${dRe})*`);
      return {
        // Lines without a quote split natively; quoted lines go through an RE2 pattern for RFC 4180 fields.
        parse: `SELECT n, raw, lines,
            CASE WHEN quoted AND NOT regexp_full_match(raw || ${d}, ${lineRe}) THEN 'unbalanced quotes'
                 WHEN len(f) <> ${count} THEN 'expected ${count} fields, got ' || len(f) END AS err,
            f
          FROM (SELECT n, raw, lines, quoted,
              CASE WHEN NOT quoted THEN string_split(raw, ${d})
                   ELSE list_transform(regexp_extract_all(raw || ${d}, ${fieldRe}, 1),
                     x -> CASE WHEN starts_with(x, '"') THEN replace(x[2:-2], '""', '"') ELSE x END) END AS f
            FROM (SELECT n, raw, lines, contains(raw, '"') AS quoted FROM data_lines))`,
        ...fieldsOf,
      };
    }
    case 'syslog': {
      const pick = (name: string) =>
        RFC3164_FIELDS.includes(name)
          ? `CASE WHEN g5.pri <> '' THEN nullif(g5.${name}, '-') ELSE nullif(g3.${name}, '') END`
          : `CASE WHEN g5.pri <> '' THEN nullif(g5.${name}, '-') END`;
      // Each line goes through the one pattern its header calls for (`<PRI>1 ` is RFC 5424); the other
      // one's groups are NULL. RFC 3164 has no year: it is inferred as for any year-less stamp.
      return {
        parse: `SELECT n, raw, lines,
            CASE WHEN coalesce(g5.pri, g3.pri, '') = '' THEN 'not a syslog line (RFC 5424 or RFC 3164)' END AS err, g5, g3
          FROM (SELECT n, raw, lines,
              regexp_extract(CASE WHEN v1 THEN raw END, ${sqlString(RFC5424)}, ${list(SYSLOG_FIELDS)}) AS g5,
              regexp_extract(CASE WHEN NOT v1 THEN raw END, ${sqlString(RFC3164)}, ${list(RFC3164_FIELDS)}) AS g3
            FROM (SELECT n, raw, lines, regexp_matches(raw, '^<\\d{1,3}>1 ') AS v1 FROM data_lines))`,
        field: (name) => (SYSLOG_FIELDS.includes(name) ? pick(name) : 'CAST(NULL AS VARCHAR)'),
        values: (names) => `[${names.map((n) => (SYSLOG_FIELDS.includes(n) ? pick(n) : 'NULL')).join(', ')}]`,
        ts: {
          expr: `CASE WHEN g5.pri <> '' THEN ${timestampSql('g5.ts', 'iso8601', ctx)}
                 ELSE ${timestampSql('g3.ts', '%b %d %H:%M:%S', ctx)} END`,
          raw: pick('ts'),
        },
        severity: {
          value: `CAST(TRY_CAST(${pick('pri')} AS INTEGER) % 8 AS TINYINT)`,
          raw: `'<' || ${pick('pri')} || '>'`,
        },
        attributes:
          () => `json_object('facility', TRY_CAST(${pick('pri')} AS INTEGER) // 8, 'procid', ${pick('procid')},
          'msgid', ${pick('msgid')}, 'structured_data', ${pick('sd')}, 'rfc', CASE WHEN g5.pri <> '' THEN 5424 ELSE 3164 END)`,
      };
    }
    case 'template':
    case 'regex': {
      const { regex, groups } = rule.pattern!;
      const names = new Set(groups);
      // One regexp_extract per line: an outer group around the whole pattern tells a match (the group is
      // not empty) from no match; only an empty whole-group needs regexp_matches to tell them apart.
      // `#line` cannot be a capture-group name. A pattern with \Q…\E is not wrapped (an open \Q would
      // swallow the closing parenthesis): it takes two calls per line.
      const whole = '#line';
      const wrap = !regex.includes('\\Q');
      return {
        parse: wrap
          ? `SELECT n, raw, lines,
              CASE WHEN g.${quoteIdent(whole)} = '' AND NOT regexp_matches(raw, ${sqlString(regex)})
                   THEN 'does not match the pattern ' || ${sqlString(regex)} END AS err, g
            FROM (SELECT n, raw, lines, regexp_extract(raw, ${sqlString(`(${regex})`)}, ${list([whole, ...groups])}) AS g
                  FROM data_lines)`
          : `SELECT n, raw, lines,
              CASE WHEN NOT regexp_matches(raw, ${sqlString(regex)}) THEN 'does not match the pattern ' || ${sqlString(regex)} END AS err,
              regexp_extract(raw, ${sqlString(regex)}, ${list(groups)}) AS g
            FROM data_lines`,
        field: (name) => (names.has(name) ? `nullif(g.${quoteIdent(name)}, '')` : 'CAST(NULL AS VARCHAR)'),
        values: (fields) =>
          `[${fields.map((f) => (names.has(f) ? `nullif(g.${quoteIdent(f)}, '')` : 'NULL')).join(', ')}]::VARCHAR[]`,
        // The groups the mapping does not use (those it uses are columns of their own).
        attributes: (used) => {
          const extra = groups.filter((g) => !used.has(g));
          return extra.length
            ? `CAST(json_object(${extra.flatMap((g) => [sqlString(g), `nullif(g.${quoteIdent(g)}, '')`]).join(', ')}) AS JSON)`
            : NULL_JSON;
        },
      };
    }
  }
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Severity SQL (on the syslog scale, and as the source wrote it) for a mapped field, or the format's own. */
export function severityFor(format: FormatSql, mapped: string | undefined): { value: string; raw: string } {
  if (mapped) return { value: severitySql(mapped), raw: mapped };
  return format.severity ?? { value: 'CAST(NULL AS TINYINT)', raw: 'CAST(NULL AS VARCHAR)' };
}
