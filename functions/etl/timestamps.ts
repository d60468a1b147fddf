import { sqlString } from '../core/duckdb.js';

/**
 * SQL that turns a VARCHAR expression into a TIMESTAMPTZ, inside DuckDB. Naive local times are read in
 * the factory's IANA zone (`timezone(zone, TIMESTAMP)` gives the instant). Anything unparseable gives
 * NULL, which the caller turns into a reject naming the field and value.
 */

/** strptime formats tried by `auto` after ISO 8601 and epoch numbers; day-first before month-first. */
export const COMMON_FORMATS = [
  '%Y-%m-%d %H:%M:%S,%g',
  '%Y/%m/%d %H:%M:%S',
  '%Y/%m/%d %H:%M:%S.%f',
  '%d/%m/%Y %H:%M:%S',
  '%d.%m.%Y %H:%M:%S',
  '%d-%b-%Y %H:%M:%S',
  '%y%m%d %H%M%S',
  '%Y%m%d %H%M%S',
  '%Y%m%dT%H%M%S',
  '%b %d %Y %H:%M:%S',
  '%b %d %H:%M:%S %Y',
  '%a %b %d %H:%M:%S %Y',
  '%m/%d/%Y %I:%M:%S %p',
] as const;

const OFFSET_SUFFIX = String.raw`([zZ]|[+-]\d{2}(:?\d{2})?)$`;

function iso(x: string, zone: string): string {
  // `Z` first: it settles most ISO stamps without the pattern. DuckDB reads only an upper-case `Z`
  // (RFC 3339 allows both).
  return `CASE WHEN suffix(${x}, 'Z') OR regexp_matches(${x}, '${OFFSET_SUFFIX}')
      THEN TRY_CAST(CASE WHEN suffix(${x}, 'z') THEN substr(${x}, 1, length(${x}) - 1) || 'Z' ELSE ${x} END AS TIMESTAMPTZ)
      ELSE timezone(${zone}, TRY_CAST(${x} AS TIMESTAMP)) END`;
}

function epochSeconds(x: string): string {
  // to_timestamp() raises on out-of-range values instead of returning NULL: bound it first.
  return `(CASE WHEN abs(TRY_CAST(${x} AS DOUBLE)) < 1e11 THEN to_timestamp(TRY_CAST(${x} AS DOUBLE)) END)`;
}

function epochMillis(x: string): string {
  return `(CASE WHEN abs(TRY_CAST(${x} AS DOUBLE)) < 1e14 THEN to_timestamp(TRY_CAST(${x} AS DOUBLE) / 1000) END)`;
}

function strptime(x: string, formats: readonly string[], zone: string): string {
  const list = `[${formats.map(sqlString).join(', ')}]`;
  const zoned = formats.every((f) => /%[zZ]/.test(f));
  return zoned
    ? `CAST(try_strptime(${x}, ${list}) AS TIMESTAMPTZ)`
    : `timezone(${zone}, CAST(try_strptime(${x}, ${list}) AS TIMESTAMP))`;
}

/**
 * @param x SQL expression of type VARCHAR
 * @param format `auto`, `iso8601`, `epoch_s`, `epoch_ms` or a strptime format
 * @param timeZone IANA zone for naive times (validated when the config is loaded)
 */
export function timestampSql(x: string, format: string, timeZone: string): string {
  const zone = sqlString(timeZone);
  switch (format) {
    case 'iso8601':
      return iso(x, zone);
    case 'epoch_s':
      return epochSeconds(x);
    case 'epoch_ms':
      return epochMillis(x);
    case 'auto': {
      // A stamp with a dash or colon is not an epoch number: those skip both patterns.
      const number = `NOT contains(${x}, '-') AND NOT contains(${x}, ':') AND`;
      return `(CASE
        WHEN ${number} regexp_full_match(${x}, '\\d{9,10}(\\.\\d+)?') THEN ${epochSeconds(x)}
        WHEN ${number} regexp_full_match(${x}, '\\d{12,13}(\\.\\d+)?') THEN ${epochMillis(x)}
        ELSE coalesce(${iso(x, zone)}, ${strptime(x, COMMON_FORMATS, zone)}) END)`;
    }
    default:
      return strptime(x, [format], zone);
  }
}
