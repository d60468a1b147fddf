import type { z } from 'zod';
import type { Items, MetricSummary, metricsQuery, ReadingSeries, readingsQuery } from '../contracts/api.js';
import { isoOrNull, num, numOrNull, type RunQuery, rows, strOrNull, Where } from './sql.js';

/** Anomalies returned with a series at most (the strongest first, then shown in time order). */
export const MAX_ANOMALIES = 2000;

/** `GET /api/metrics`: what can be charted — one row per factory, device and metric. */
export async function listMetrics(
  run: RunQuery,
  q: z.output<typeof metricsQuery>,
): Promise<Items<MetricSummary>> {
  const where = new Where()
    .when(q.factory, 'factory', 'factory = $factory')
    .when(q.device, 'device', 'device = $device');
  const found = await rows(
    run,
    `SELECT factory, device, metric, any_value(unit) AS unit, count(*) AS n,
       epoch_ms(min(ts)) AS first, epoch_ms(max(ts)) AS last
     FROM readings ${where} GROUP BY ALL ORDER BY factory, device, metric`,
    where.params,
  );
  return {
    items: found.map((r) => ({
      factory: String(r.factory),
      device: String(r.device),
      metric: String(r.metric),
      unit: strOrNull(r.unit),
      readings: num(r.n),
      first: isoOrNull(r.first)!,
      last: isoOrNull(r.last)!,
    })),
  };
}

/**
 * `GET /api/readings`: one device's metric over a time range, downsampled in DuckDB to at most
 * `points` points with M4 — the range is cut into `points / 4` equal buckets and each keeps its first,
 * last, smallest and largest value, so a line drawn through them has the same extremes and envelope as
 * one drawn through every reading (Jugel et al., "M4: a visualization-oriented time series data
 * aggregation", VLDB 2014). A range with no more readings than `points` comes back whole. Anomalies
 * come back as their own points, whether or not a bucket kept them.
 *
 * Without `from`/`to` the range is the series' own first and last reading.
 */
export async function readSeries(run: RunQuery, q: z.output<typeof readingsQuery>): Promise<ReadingSeries> {
  const where = new Where()
    .and('factory = $factory AND device = $device AND metric = $metric', {
      factory: q.factory,
      device: q.device,
      metric: q.metric,
    })
    .and('isfinite(value)')
    .when(q.from, 'from', 'ts >= CAST($from AS TIMESTAMPTZ)')
    .when(q.to, 'to', 'ts < CAST($to AS TIMESTAMPTZ)');
  const buckets = Math.floor(q.points / 4);
  // `lo`/`hi`: the requested range, or the data's; the bucket of a reading is its offset in it.
  const found = await rows(
    run,
    `WITH r AS MATERIALIZED (
       SELECT epoch_us(ts) AS t, value, is_anomaly, anomaly_score, unit FROM readings ${where}),
     s AS (
       SELECT count(*) AS n, coalesce(${q.from ? 'epoch_us(CAST($from AS TIMESTAMPTZ))' : 'NULL'}, min(t)) AS lo,
         coalesce(${q.to ? 'epoch_us(CAST($to AS TIMESTAMPTZ))' : 'NULL'}, max(t) + 1) AS hi,
         any_value(unit) AS unit
       FROM r),
     b AS (
       SELECT least($buckets - 1, (r.t - s.lo) * $buckets // greatest(1, s.hi - s.lo)) AS b,
         min(r.t) AS t1, arg_min(r.value, r.t) AS v1, max(r.t) AS t2, arg_max(r.value, r.t) AS v2,
         arg_min(r.t, r.value) AS t3, min(r.value) AS v3, arg_max(r.t, r.value) AS t4, max(r.value) AS v4
       FROM r, s WHERE s.n > $points GROUP BY 1),
     p AS (
       SELECT t, value FROM r, s WHERE s.n <= $points
       UNION
       SELECT unnest([t1, t2, t3, t4]) AS t, unnest([v1, v2, v3, v4]) AS value FROM b)
     SELECT 'p' AS kind, t / 1000 AS ms, value, NULL::DOUBLE AS score, NULL AS unit FROM p
     UNION ALL
     SELECT 'a', t / 1000, value, anomaly_score, NULL FROM (
       SELECT * FROM r WHERE is_anomaly ORDER BY abs(anomaly_score) DESC NULLS LAST LIMIT ${MAX_ANOMALIES})
     UNION ALL
     SELECT 's', lo / 1000, hi / 1000, n, unit FROM s
     ORDER BY kind, ms`,
    { ...where.params, buckets, points: q.points },
  );
  return seriesOf(q, found);
}

function seriesOf(q: z.output<typeof readingsQuery>, found: Record<string, unknown>[]): ReadingSeries {
  const points: [number, number][] = [];
  const anomalies: [number, number, number | null][] = [];
  let stats = {
    from: q.from?.getTime() ?? 0,
    to: q.to?.getTime() ?? 0,
    rows: 0,
    unit: null as string | null,
  };
  for (const r of found) {
    if (r.kind === 'p') points.push([num(r.ms), num(r.value)]);
    else if (r.kind === 'a') anomalies.push([num(r.ms), num(r.value), numOrNull(r.score)]);
    else if (r.kind === 's' && r.ms !== null) {
      stats = { from: num(r.ms), to: num(r.value), rows: num(r.score), unit: strOrNull(r.unit) };
    }
  }
  return {
    factory: q.factory,
    device: q.device,
    metric: q.metric,
    unit: stats.unit,
    from: stats.from,
    to: Math.ceil(stats.to),
    rows: stats.rows,
    downsampled: stats.rows > q.points,
    points,
    anomalies,
  };
}
