import { z } from 'zod';
import { HttpError } from './http.js';

/** A bound parameter's value. Timestamps are bound as ISO strings and CAST in the SQL. */
export type Param = string | number | boolean | null;
export type Params = Record<string, Param>;
export type Row = Record<string, unknown>;

/** What the read routes need of the warehouse: a read-only query with bound parameters. */
export type RunQuery = (
  sql: string,
  params?: Params,
) => Promise<{ columns: string[]; rows: Row[]; truncated?: boolean } | undefined>;

/**
 * A WHERE clause built from fixed SQL fragments and bound parameters — a request's values are only
 * ever parameters. Only the filters a request gives are added, so DuckDB sees plain comparisons it
 * can push into the scan (`$p IS NULL OR col = $p` would defeat that).
 */
export class Where {
  private readonly parts: string[] = [];
  readonly params: Params = {};

  /** Adds `fragment` (which names `$key`) when `value` is given. */
  when(value: Param | Date | undefined, key: string, fragment: string): this {
    if (value === undefined) return this;
    this.params[key] = value instanceof Date ? value.toISOString() : value;
    this.parts.push(fragment);
    return this;
  }

  /** Adds a fragment with its own parameters. */
  and(fragment: string, params: Params = {}): this {
    Object.assign(this.params, params);
    this.parts.push(fragment);
    return this;
  }

  toString(): string {
    return this.parts.length > 0 ? `WHERE ${this.parts.join(' AND ')}` : '';
  }
}

/** Rows of a read query; none before the first batch has made a warehouse. */
export async function rows(run: RunQuery, sql: string, params: Params = {}): Promise<Row[]> {
  return (await run(sql, params))?.rows ?? [];
}

/** A number from a query value (BIGINT and HUGEINT come back as strings to keep their precision). */
export function num(v: unknown): number {
  return typeof v === 'number' ? v : Number(v);
}

export function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : num(v);
}

export function strOrNull(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}

/** An ISO string from epoch milliseconds as the queries return them (`epoch_ms(ts)`). */
export function isoOrNull(ms: unknown): string | null {
  return ms === null || ms === undefined ? null : new Date(num(ms)).toISOString();
}

/**
 * Keyset paging: a cursor is the sort key of the last row of a page, base64url JSON. It is checked
 * against the route's schema when it comes back, so a made-up cursor is a 400, never SQL.
 */
export function encodeCursor(key: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

export function decodeCursor<S extends z.ZodType>(cursor: string, schema: S): z.output<S> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new HttpError(400, 'cursor: not a cursor this API returned');
  return parsed.data;
}

/** The sort key of a timestamped row: epoch microseconds (exact), then text and line tie-breakers. */
export const tsKeyCursor = z.tuple([z.number().int(), z.string().max(1024), z.number().int()]);
