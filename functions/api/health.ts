import type { z } from 'zod';
import {
  DEFAULT_HEALTH_HOURS,
  type HealthGrid,
  type healthQuery,
  MAX_HEALTH_COLUMNS,
} from '../contracts/api.js';
import { ERROR_SEVERITY, healthScoreSql, WARNING_SEVERITY } from '../contracts/health.js';
import { num, type RunQuery, rows, strOrNull, Where } from './sql.js';

const HOUR = 3_600_000;
/** Cells a heatmap response holds at most (the query's row cap is 10,000). */
const MAX_CELLS = 9_999;

/** The range to show: as asked, rounded out to whole hours; by default the 48 hours up to the latest data. */
async function range(
  run: RunQuery,
  q: z.output<typeof healthQuery>,
): Promise<{ from: number; to: number } | undefined> {
  let to = q.to?.getTime();
  if (to === undefined) {
    const where = new Where()
      .when(q.factory, 'factory', 'factory = $factory')
      .when(q.from, 'from', 'ts >= CAST($from AS TIMESTAMPTZ)');
    const [latest] = await rows(
      run,
      `SELECT epoch_ms(greatest((SELECT max(ts) FROM readings ${where}),
         (SELECT max(ts) FROM events ${where}))) AS ms`,
      where.params,
    );
    if (latest?.ms === null || latest?.ms === undefined) return undefined;
    to = num(latest.ms) + 1;
  }
  const end = Math.ceil(to / HOUR) * HOUR;
  const start = Math.floor((q.from?.getTime() ?? end - DEFAULT_HEALTH_HOURS * HOUR) / HOUR) * HOUR;
  return { from: start, to: end };
}

/**
 * `GET /api/health`: device × hour health scores for a heatmap (contracts/health.ts has the score).
 * A range of more than a week of hours is shown in wider columns — 2, 3, … hours, each scored on the
 * sum of its hours' anomalies and events — so the grid stays readable and the response bounded.
 * Devices in the registry with no data in the range are listed too: a silent device is news.
 */
export async function healthGrid(run: RunQuery, q: z.output<typeof healthQuery>): Promise<HealthGrid> {
  const span = await range(run, q);
  if (!span) {
    return { from: 0, to: 0, bucketHours: 1, hours: [], devices: [], truncated: false, cells: [] };
  }
  const bucketHours = Math.max(1, Math.ceil((span.to - span.from) / HOUR / MAX_HEALTH_COLUMNS));
  const width = bucketHours * HOUR;
  const columns = Math.ceil((span.to - span.from) / width);
  const where = new Where()
    .when(q.factory, 'factory', 'factory = $factory')
    .and('ts >= CAST($from AS TIMESTAMPTZ) AND ts < CAST($to AS TIMESTAMPTZ)', {
      from: new Date(span.from).toISOString(),
      to: new Date(span.to).toISOString(),
    });
  const params = { ...where.params, lo: span.from, width };
  const column = '(epoch_ms(ts) - $lo) // $width';
  const found = await rows(
    run,
    `WITH r AS (
       SELECT factory, device, ${column} AS col, count(*) AS readings, count(*) FILTER (WHERE is_anomaly) AS anomalies
       FROM readings ${where} GROUP BY ALL),
     e AS (
       SELECT factory, device, ${column} AS col,
         count(*) FILTER (WHERE effective_severity <= ${ERROR_SEVERITY}) AS errors,
         count(*) FILTER (WHERE effective_severity = ${WARNING_SEVERITY}) AS warnings
       FROM events ${where} AND device IS NOT NULL GROUP BY ALL)
     SELECT factory, device, col, coalesce(r.readings, 0) AS readings, coalesce(r.anomalies, 0) AS anomalies,
       coalesce(e.errors, 0) AS errors, coalesce(e.warnings, 0) AS warnings,
       ${healthScoreSql('coalesce(r.anomalies, 0)', 'coalesce(e.errors, 0)', 'coalesce(e.warnings, 0)')} AS score
     FROM r FULL OUTER JOIN e USING (factory, device, col)
     ORDER BY factory, device, col
     LIMIT ${MAX_CELLS + 1}`,
    params,
  );
  const ofFactory = new Where().when(q.factory, 'factory', 'factory = $factory');
  const registry = await rows(
    run,
    `SELECT factory, device, line, criticality FROM devices ${ofFactory}`,
    ofFactory.params,
  );
  const devices = new Map<string, HealthGrid['devices'][number]>();
  for (const d of registry) {
    devices.set(`${d.factory}\u0000${d.device}`, {
      factory: String(d.factory),
      device: String(d.device),
      line: strOrNull(d.line),
      criticality: strOrNull(d.criticality),
    });
  }
  const cells = found.slice(0, MAX_CELLS).map((r) => ({
    factory: String(r.factory),
    device: String(r.device),
    hour: span.from + num(r.col) * width,
    score: num(r.score),
    readings: num(r.readings),
    anomalies: num(r.anomalies),
    errors: num(r.errors),
    warnings: num(r.warnings),
  }));
  for (const c of cells) {
    const key = `${c.factory}\u0000${c.device}`;
    if (!devices.has(key))
      devices.set(key, { factory: c.factory, device: c.device, line: null, criticality: null });
  }
  return {
    from: span.from,
    to: span.to,
    bucketHours,
    hours: Array.from({ length: columns }, (_, i) => span.from + i * width),
    devices: [...devices.values()].sort(
      (a, b) =>
        (a.line ?? '\uffff').localeCompare(b.line ?? '\uffff') ||
        a.factory.localeCompare(b.factory) ||
        a.device.localeCompare(b.device),
    ),
    truncated: found.length > MAX_CELLS,
    cells,
  };
}
