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
  // Without a year (RFC 3164 syslog, many device logs, Android logcat): the year is inferred.
  '%b %d %H:%M:%S',
  '%b %d %H:%M:%S.%g',
  '%m-%d %H:%M:%S.%g',
  '%m-%d %H:%M:%S',
] as const;

/**
 * Where naive and year-less stamps are placed: the zone for naive local times, and the instant a
 * year-less stamp is read against — the end of the day the object's key names, else the object's
 * creation time. The stamp takes that instant's year, or the year before when it would otherwise
 * fall more than a day after it (a December line in a file of 1 January).
 */
export interface TimeContext {
  timeZone: string;
  yearReference: Date;
}

/** Does a strptime format name the year? */
export function hasYear(format: string): boolean {
  return /%[YyGCs]|%[cDFx]/.test(format);
}

/** A zone designator after a time of day (`10:00Z`, `10:00:00.5+01:00`): a bare date's `-02` is not one. */
const OFFSET_SUFFIX = String.raw`\d:\d{2}(:\d{2}([.,]\d+)?)?\s*([zZ]|[+-]\d{2}(:?\d{2})?)$`;
/** UTC offsets, after a time of day, beyond ±14:00 (none exists) or with minutes ≥ 60: DuckDB would accept `+25:00`. */
export const BAD_OFFSET = String.raw`\d:\d{2}(:\d{2}([.,]\d+)?)?\s*([+-](1[5-9]|[2-9]\d):?\d{2}|[+-]\d{2}:?[6-9]\d)$`;

function iso(x: string, zone: string): string {
  // `Z` first: it settles most ISO stamps without a pattern (and a `Z` stamp has no offset to check).
  // DuckDB reads only an upper-case `Z` (RFC 3339 allows both).
  return `CASE WHEN suffix(${x}, 'Z') THEN TRY_CAST(${x} AS TIMESTAMPTZ)
      WHEN regexp_matches(${x}, '${OFFSET_SUFFIX}')
      THEN CASE WHEN NOT regexp_matches(${x}, '${BAD_OFFSET}')
        THEN TRY_CAST(CASE WHEN suffix(${x}, 'z') THEN substr(${x}, 1, length(${x}) - 1) || 'Z' ELSE ${x} END AS TIMESTAMPTZ) END
      ELSE timezone(${zone}, TRY_CAST(${x} AS TIMESTAMP)) END`;
}

function epochSeconds(x: string): string {
  // to_timestamp() raises on out-of-range values instead of returning NULL: bound it first.
  return `(CASE WHEN abs(TRY_CAST(${x} AS DOUBLE)) < 1e11 THEN to_timestamp(TRY_CAST(${x} AS DOUBLE)) END)`;
}

function epochMillis(x: string): string {
  return `(CASE WHEN abs(TRY_CAST(${x} AS DOUBLE)) < 1e14 THEN to_timestamp(TRY_CAST(${x} AS DOUBLE) / 1000) END)`;
}

function strptime(x: string, formats: readonly string[], ctx: TimeContext): string {
  const zone = sqlString(ctx.timeZone);
  const parse = (text: string, fs: readonly string[]) => {
    const list = `[${fs.map(sqlString).join(', ')}]`;
    return fs.every((f) => /%[zZ]/.test(f))
      ? `CAST(try_strptime(${text}, ${list}) AS TIMESTAMPTZ)`
      : `timezone(${zone}, CAST(try_strptime(${text}, ${list}) AS TIMESTAMP))`;
  };
  const dated = formats.filter(hasYear);
  const yearless = formats.filter((f) => !hasYear(f));
  const parts = dated.length ? [parse(x, dated)] : [];
  if (yearless.length) {
    // strptime would give these year 1900. (It reads a run of spaces, `Jan  2`, as one.)
    const year = ctx.yearReference.getUTCFullYear();
    const withYear = (y: number) =>
      parse(
        `'${y} ' || ${x}`,
        yearless.map((f) => `%Y ${f}`),
      );
    const latest = `TIMESTAMPTZ '${new Date(ctx.yearReference.getTime() + 86_400_000).toISOString()}'`;
    parts.push(
      `(CASE WHEN ${withYear(year)} IS NULL OR ${withYear(year)} > ${latest} THEN ${withYear(year - 1)} ELSE ${withYear(year)} END)`,
    );
  }
  return parts.length === 1 ? parts[0]! : `coalesce(${parts.join(', ')})`;
}

/**
 * @param x SQL expression of type VARCHAR
 * @param format `auto`, `iso8601`, `epoch_s`, `epoch_ms` or a strptime format
 * @param ctx the zone for naive times (validated when the config is loaded), the year for year-less ones
 */
export function timestampSql(x: string, format: string, ctx: TimeContext): string {
  const zone = sqlString(ctx.timeZone);
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
        ELSE coalesce(${iso(x, zone)}, ${strptime(x, COMMON_FORMATS, ctx)}) END)`;
    }
    default:
      return strptime(x, [format], ctx);
  }
}
