import type { z } from 'zod';
import type { DeviceSummary, devicesQuery, Items, Overview, overviewQuery } from '../contracts/api.js';
import { ERROR_SEVERITY, healthScoreSql, WARNING_SEVERITY } from '../contracts/health.js';
import { isoOrNull, num, numOrNull, type RunQuery, rows, strOrNull, Where } from './sql.js';

/** Widths a throughput bucket may have, narrowest first: the first that fits the data in ≤ 120 buckets. */
const BUCKET_SECONDS = [60, 300, 900, 3600] as const;
const THROUGHPUT_WINDOW_HOURS = 48;

export interface QueueDepth {
  queue: string;
  waiting: number;
  inFlight: number;
}

/**
 * `GET /api/overview`: per factory, the files the pipeline has seen and how they ended (from the ETL
 * manifests and the warehouse ledger: `pipeline_files`), lines and rows, end-to-end lag of complete
 * files, and throughput over the latest 48 hours of uploads; queue depths where the function can see
 * them.
 */
export async function overview(
  run: RunQuery,
  q: z.output<typeof overviewQuery>,
  extra: { warehouse: { lastModified: string; bytes: number } | undefined; queues: QueueDepth[] | null },
): Promise<Overview> {
  const where = new Where().when(q.factory, 'factory', 'p.factory = $factory');
  const perFactory = await rows(
    run,
    `SELECT p.factory, count(*) AS total,
       count(*) FILTER (WHERE p.status = 'loaded' AND p.complete) AS complete,
       count(*) FILTER (WHERE p.status = 'loaded' AND NOT p.complete) AS incomplete,
       count(*) FILTER (WHERE p.status = 'quarantined') AS quarantined,
       count(*) FILTER (WHERE p.lines_rejected > 0) AS with_rejects,
       sum(p.lines_total) AS lines_total, sum(p.lines_loaded) AS lines_loaded,
       sum(p.lines_rejected) AS lines_rejected,
       sum(m.rows_readings) AS rows_readings, sum(m.rows_events) AS rows_events,
       quantile_cont(p.end_to_end_seconds, 0.5) FILTER (WHERE p.complete) AS lag_p50,
       quantile_cont(p.end_to_end_seconds, 0.95) FILTER (WHERE p.complete) AS lag_p95,
       epoch_ms(max(p.loaded_at)) AS last_loaded
     FROM pipeline_files p JOIN manifests m USING (source_key, source_etag)
     ${where} GROUP BY p.factory ORDER BY p.factory`,
    where.params,
  );
  const throughput = await rows(
    run,
    `WITH f AS (SELECT p.raw_created_at, p.rows_loaded, p.lines_rejected FROM pipeline_files p ${where}),
     latest AS (SELECT max(raw_created_at) AS t FROM f),
     w AS (SELECT any_value(latest.t) - INTERVAL ${THROUGHPUT_WINDOW_HOURS} HOUR AS start,
             epoch(any_value(latest.t)) - epoch(min(f.raw_created_at)) AS span
           FROM f, latest WHERE f.raw_created_at >= latest.t - INTERVAL ${THROUGHPUT_WINDOW_HOURS} HOUR),
     b AS (SELECT coalesce(min(s) FILTER (WHERE w.span / s <= 120), 3600) AS width
           FROM w, unnest([${BUCKET_SECONDS.join(', ')}]) t(s))
     SELECT b.width, floor(epoch(raw_created_at) / b.width) * b.width * 1000 AS t,
       count(*) AS files, sum(rows_loaded) AS rows, sum(coalesce(lines_rejected, 0)) AS rejected
     FROM f, w, b WHERE f.raw_created_at >= w.start GROUP BY ALL ORDER BY t`,
    where.params,
  );
  return {
    generatedAt: new Date().toISOString(),
    warehouse: { updatedAt: extra.warehouse?.lastModified ?? null, bytes: extra.warehouse?.bytes ?? null },
    factories: perFactory.map((r) => ({
      factory: String(r.factory),
      files: {
        total: num(r.total),
        complete: num(r.complete),
        incomplete: num(r.incomplete),
        quarantined: num(r.quarantined),
        withRejects: num(r.with_rejects),
      },
      lines: {
        total: num(r.lines_total ?? 0),
        loaded: num(r.lines_loaded ?? 0),
        rejected: num(r.lines_rejected ?? 0),
      },
      rows: { readings: num(r.rows_readings ?? 0), events: num(r.rows_events ?? 0) },
      lagSeconds: { p50: numOrNull(r.lag_p50), p95: numOrNull(r.lag_p95) },
      lastLoadedAt: isoOrNull(r.last_loaded),
    })),
    throughput: {
      bucketSeconds: throughput[0] ? num(throughput[0].width) : 3600,
      buckets: throughput.map((r) => ({
        t: num(r.t),
        files: num(r.files),
        rows: num(r.rows ?? 0),
        rejected: num(r.rejected),
      })),
    },
    queues: extra.queues,
  };
}

/**
 * `GET /api/devices`: the registry joined with what the data says of each device — every device seen
 * in readings or events appears, registered or not. Health is the score of the device's latest hour
 * with data; anomalies and open alarms count the 24 hours before it was last seen. An "open alarm"
 * is an event of error severity or worse in that window (the pipeline has no acknowledgement).
 */
export async function listDevices(
  run: RunQuery,
  q: z.output<typeof devicesQuery>,
): Promise<Items<DeviceSummary>> {
  const where = new Where().when(q.factory, 'factory', 'factory = $factory');
  const deviceWhere = new Where().when(q.factory, 'factory', 'factory = $factory').and('device IS NOT NULL');
  const found = await rows(
    run,
    `WITH seen AS (
       SELECT factory, device, max(ts) AS last_seen FROM (
         SELECT factory, device, max(ts) AS ts FROM readings ${where} GROUP BY ALL
         UNION ALL
         SELECT factory, device, max(ts) FROM events ${deviceWhere} GROUP BY ALL) GROUP BY ALL),
     r AS (
       SELECT factory, device, date_trunc('hour', ts) AS hour, count(*) FILTER (WHERE is_anomaly) AS anomalies
       FROM readings JOIN seen USING (factory, device)
       WHERE ts > last_seen - INTERVAL 24 HOUR GROUP BY ALL),
     e AS (
       SELECT factory, device, date_trunc('hour', ts) AS hour,
         count(*) FILTER (WHERE effective_severity <= ${ERROR_SEVERITY}) AS errors,
         count(*) FILTER (WHERE effective_severity = ${WARNING_SEVERITY}) AS warnings,
         arg_max(struct_pack(ts := epoch_ms(ts), code, severity := effective_severity, message), ts)
           FILTER (WHERE effective_severity <= ${ERROR_SEVERITY}) AS last_alarm
       FROM events JOIN seen USING (factory, device)
       WHERE ts > last_seen - INTERVAL 24 HOUR GROUP BY ALL),
     h AS (
       SELECT factory, device, hour, coalesce(r.anomalies, 0) AS anomalies, coalesce(e.errors, 0) AS errors,
         ${healthScoreSql('coalesce(r.anomalies, 0)', 'coalesce(e.errors, 0)', 'coalesce(e.warnings, 0)')} AS score,
         e.last_alarm
       FROM r FULL OUTER JOIN e USING (factory, device, hour)),
     agg AS (
       SELECT factory, device, sum(anomalies) AS anomalies, sum(errors) AS alarms,
         arg_max(struct_pack(hour := epoch_ms(hour), score), hour) AS latest,
         arg_max(last_alarm, last_alarm.ts) AS last_alarm
       FROM h GROUP BY ALL)
     SELECT factory, device, d.model, d.line, d.site, d.criticality, d.device IS NOT NULL AS registered,
       epoch_ms(seen.last_seen) AS last_seen, agg.anomalies, agg.alarms, agg.latest, agg.last_alarm
     FROM (SELECT * FROM devices ${where}) d
     FULL OUTER JOIN seen USING (factory, device)
     LEFT JOIN agg USING (factory, device)
     ORDER BY d.line NULLS LAST, factory, device`,
    where.params,
  );
  return {
    items: found.map((r) => {
      const latest = r.latest as { hour: unknown; score: unknown } | null;
      const alarm = r.last_alarm as {
        ts: unknown;
        code: unknown;
        severity: unknown;
        message: unknown;
      } | null;
      return {
        factory: String(r.factory),
        device: String(r.device),
        model: strOrNull(r.model),
        line: strOrNull(r.line),
        site: strOrNull(r.site),
        criticality: strOrNull(r.criticality),
        registered: Boolean(r.registered),
        lastSeen: isoOrNull(r.last_seen),
        health: latest ? { hour: isoOrNull(latest.hour)!, score: num(latest.score) } : null,
        anomalies24h: num(r.anomalies ?? 0),
        openAlarms: num(r.alarms ?? 0),
        lastAlarm: alarm
          ? {
              ts: isoOrNull(alarm.ts)!,
              code: strOrNull(alarm.code),
              severity: numOrNull(alarm.severity),
              message: strOrNull(alarm.message),
            }
          : null,
      };
    }),
  };
}
