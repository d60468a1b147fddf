import type { z } from 'zod';
import type { EventRow, eventsQuery, Page } from '../contracts/api.js';
import {
  decodeCursor,
  encodeCursor,
  isoOrNull,
  num,
  numOrNull,
  type RunQuery,
  rows,
  strOrNull,
  tsKeyCursor,
  Where,
} from './sql.js';

/**
 * `GET /api/events`: events and alarms, newest first, a page at a time. Paging is by key — the last
 * row's (ts, source_key, source_line) — not by OFFSET, so a page costs the same however deep it is and
 * rows loaded meanwhile do not shift the pages already seen. `severity` keeps that level and worse
 * (by the effective severity: the more severe of the line's level and its code's).
 */
export async function listEvents(run: RunQuery, q: z.output<typeof eventsQuery>): Promise<Page<EventRow>> {
  const where = new Where()
    .when(q.factory, 'factory', 'factory = $factory')
    .when(q.device, 'device', 'device = $device')
    .when(q.code, 'code', 'code = $code')
    .when(q.severity, 'severity', 'coalesce(effective_severity, severity) <= $severity')
    .when(q.from, 'from', 'ts >= CAST($from AS TIMESTAMPTZ)')
    .when(q.to, 'to', 'ts < CAST($to AS TIMESTAMPTZ)');
  if (q.cursor) {
    const [us, key, line] = decodeCursor(q.cursor, tsKeyCursor);
    where.and(
      `(epoch_us(ts) < $c_us OR (epoch_us(ts) = $c_us AND (source_key > $c_key OR (source_key = $c_key AND source_line > $c_line))))`,
      { c_us: us, c_key: key, c_line: line },
    );
  }
  const found = await rows(
    run,
    `SELECT epoch_us(ts) AS us, factory, device, severity, severity_name, effective_severity, code, category,
       component, message, code_description, recommended_action, severity_score, source_key, source_line
     FROM events ${where}
     ORDER BY ts DESC, source_key, source_line
     LIMIT $limit`,
    { ...where.params, limit: q.limit + 1 },
  );
  const page = found.slice(0, q.limit);
  const last = page.at(-1);
  return {
    items: page.map((r) => ({
      ts: isoOrNull(num(r.us) / 1000)!,
      factory: String(r.factory),
      device: strOrNull(r.device),
      severity: numOrNull(r.severity),
      severity_name: strOrNull(r.severity_name),
      effective_severity: numOrNull(r.effective_severity),
      code: strOrNull(r.code),
      category: strOrNull(r.category),
      component: strOrNull(r.component),
      message: strOrNull(r.message),
      code_description: strOrNull(r.code_description),
      recommended_action: strOrNull(r.recommended_action),
      severity_score: numOrNull(r.severity_score),
      source_key: String(r.source_key),
      source_line: num(r.source_line),
    })),
    nextCursor:
      found.length > q.limit && last
        ? encodeCursor([num(last.us), String(last.source_key), num(last.source_line)])
        : null,
  };
}
