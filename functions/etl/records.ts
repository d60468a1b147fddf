import type { DuckDBConnection } from '@duckdb/node-api';
import { sqlString } from '../core/duckdb.js';
import type { Records } from './rule.js';

/**
 * Joins lines into multiline records, in SQL, batch by batch (see normalize.ts). The lines of a batch
 * are the ones the last batch held back (`carry`: its last record, which may go on) followed by the
 * batch's own. Each line gets the number of the line that starts its record (`rn`): the last start at
 * or before it; a line before any start is a record of its own. A record is its lines joined with \n,
 * numbered by its first line, with `lines` its line count — so every line stays accounted for.
 *
 * A record that grows past `maxLines` or `maxBytes`, or a CSV record whose quoted field never closes,
 * is not joined: its lines go on as records of their own (a stray quote or a start pattern that
 * stopped matching then costs only those lines, each parsed or rejected alone, never the file).
 *
 * Most batches have no line that continues another: that is found out first, with one cheap test per
 * line, and such a batch goes on as it is — the window, grouping and join are only paid for batches
 * that have multiline records.
 */

/**
 * Lines that go on the record before them when a template is the rule: indented lines, Java stack
 * frames (`at …`, `... 12 more`, `Caused by:`, `Suppressed:`), an exception class line
 * (`java.lang.IllegalStateException: boom`), Python's traceback lines (`Traceback (most recent call
 * last):` and `ValueError: bad value`).
 */
export const CONTINUATION = String.raw`^(?:[ \t]|at |Caused by:|Suppressed:|\.\.\. \d+ (?:more|common frames omitted)|(?:[A-Za-z_$][\w$]*\.)+[A-Za-z_$][\w$]*(?:Exception|Error|Throwable)(?::|$)|Traceback \(most recent call last\):|[A-Za-z_][\w.]*(?:Error|Exception|Warning): )`;

/**
 * Makes `data_lines (n, raw, lines, …)` from the batch's lines (`linesSql`, yielding `n, raw`) and
 * leaves the batch's unfinished record in `carry` (which must exist). `pattern` is the rule's own
 * pattern (for `template` mode). `last`: no batch follows; nothing is held back. `quoteOpen` (CSV): a
 * record broken for its size left a quoted field open at the end of the last batch — its remaining
 * lines, up to the quote that closes it, go on one by one here too, as they would within one batch.
 * Returns that state for the next batch.
 */
/**
 * SQL: the line `raw` is blank as the line splitter means it (nothing but ASCII spaces, `isBlank`); the
 * cheap tests first. Blank lines are counted, never parsed.
 */
export const BLANK = `(raw = '' OR (prefix(raw, ' ') AND trim(raw, ' ') = ''))`;

export async function buildRecords(
  c: DuckDBConnection,
  linesSql: string,
  r: Records,
  pattern: string | undefined,
  last: boolean,
  quoteOpen = false,
): Promise<boolean> {
  // `odd`: the line has an odd number of double quotes (it opens or closes a quoted field).
  const odd =
    r.mode === 'quotes'
      ? `CASE WHEN contains(raw, '"') THEN (strlen(raw) - strlen(replace(raw, '"', ''))) % 2 ELSE 0 END`
      : '0';
  // `s`: the line starts a record (for CSV, decided below from the quotes before it). CASE, not OR:
  // the rule's own pattern runs only on the few lines that look like continuations.
  const s =
    r.mode === 'quotes'
      ? 'true'
      : r.mode === 'start'
        ? `regexp_matches(raw, ${sqlString(r.start!)})`
        : `CASE WHEN NOT regexp_matches(raw, ${sqlString(CONTINUATION)}) THEN true ELSE regexp_matches(raw, ${sqlString(pattern!)}) END`;
  await c.run(`CREATE OR REPLACE TEMP TABLE data_lines AS
    SELECT n, raw, 1 AS lines, odd, ${s} AS s
    FROM (SELECT n, raw, ${odd} AS odd FROM (SELECT n, raw FROM carry UNION ALL SELECT n, raw FROM (${linesSql})))`);
  const [simple, lastLine] = (
    await c.runAndReadAll(
      `SELECT coalesce(${r.mode === 'quotes' ? 'sum(odd) = 0' : 'bool_and(s)'}, true), max(n) FROM data_lines`,
    )
  ).getRows()[0] as [boolean, bigint | null];
  if (simple) {
    // Every line is a record of its own. The last may still be continued by the next batch (a quote
    // that is not open cannot be).
    const hold = !last && r.mode !== 'quotes' && lastLine !== null;
    await c.run(
      `CREATE OR REPLACE TEMP TABLE carry AS SELECT n, raw FROM data_lines WHERE ${hold ? `n = ${lastLine}` : 'false'}`,
    );
    if (hold) await c.run(`DELETE FROM data_lines WHERE n = ${lastLine}`);
    // CSV lines came with the blank ones (a quoted field may hold one): none is inside a field here.
    if (r.mode === 'quotes') await c.run(`DELETE FROM data_lines WHERE ${BLANK}`);
    // No quote in the batch: a field left open stays open.
    return quoteOpen;
  }
  const start =
    r.mode === 'quotes'
      ? // Quotes before the line: an even count means no field is open, and the line starts a record.
        `(coalesce(sum(odd) OVER (ORDER BY n ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) + ${quoteOpen ? 1 : 0}) % 2 = 0`
      : 's';
  for (const sql of [
    `CREATE OR REPLACE TEMP TABLE grouped AS
       SELECT n, raw, odd, coalesce(max(CASE WHEN s THEN n END) OVER (ORDER BY n ROWS UNBOUNDED PRECEDING), n) AS rn
       FROM (SELECT n, raw, odd, ${start} AS s FROM data_lines)`,
    // Per record: joined or not (`broken`), held back for the next batch or not.
    `CREATE OR REPLACE TEMP TABLE recs AS
       SELECT rn, lines, broken, NOT broken AND held AS held, open FROM (
         SELECT rn, count(*) AS lines, sum(odd) % 2 = 1 AS open,
           count(*) > ${r.maxLines} OR sum(strlen(raw) + 1) > ${r.maxBytes}
             ${last ? 'OR sum(odd) % 2 = 1' : ''} AS broken,
           ${last ? 'false' : 'rn = max(rn) OVER ()'} AS held
         FROM grouped GROUP BY rn)`,
    `CREATE OR REPLACE TEMP TABLE data_lines AS
       SELECT g.n, g.raw, 1 AS lines FROM grouped g JOIN recs USING (rn)
         WHERE recs.broken OR (recs.lines = 1 AND NOT recs.held)
       UNION ALL
       SELECT rn AS n, string_agg(g.raw, chr(10) ORDER BY g.n) AS raw, any_value(recs.lines) AS lines
         FROM grouped g JOIN recs USING (rn)
         WHERE recs.lines > 1 AND NOT recs.broken AND NOT recs.held
         GROUP BY rn`,
    `CREATE OR REPLACE TEMP TABLE carry AS
       SELECT g.n, g.raw FROM grouped g JOIN recs USING (rn) WHERE recs.held`,
    // A blank line that is a record of its own is a blank line (only CSV brings them this far).
    `DELETE FROM data_lines WHERE lines = 1 AND ${BLANK}`,
  ]) {
    await c.run(sql);
  }
  // The batch's last record, broken with its quoted field still open: the field goes on in the next.
  const [open] = (
    await c.runAndReadAll(
      'SELECT coalesce(bool_or(broken AND open), false) FROM recs WHERE rn = (SELECT max(rn) FROM recs)',
    )
  ).getRows()[0] as [boolean];
  await c.run('DROP TABLE grouped');
  await c.run('DROP TABLE recs');
  return r.mode === 'quotes' && !last && open;
}
