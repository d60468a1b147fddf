/**
 * Load on the embedded stack for `npm run bench`: files uploaded at a steady rate (queue depths over
 * time, upload → queryable per file, the process's RSS), and one file spanning a year against one
 * spanning a day (upload → queryable). Every figure is measured here, in this run.
 */

import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { Runtime } from '../local/runtime.js';

export type Query = (sql: string) => Promise<Record<string, unknown>[]>;

/** Keys under `prefix` whose file the warehouse has recorded (its rows and manifest commit together). */
async function loaded(query: Query, prefix: string): Promise<Set<string>> {
  const rows = await query(
    `SELECT source_key FROM manifests WHERE starts_with(source_key, '${prefix.replace(/'/g, "''")}')`,
  ).catch((err: Error) => {
    if (err.message.startsWith('no warehouse yet')) return [];
    throw err;
  });
  return new Set(rows.map((r) => String(r.source_key)));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

export interface SustainedResult {
  files: number;
  ratePerSecond: number;
  seconds: number;
  lost: number;
  p50: number;
  p95: number;
  max: number;
  /** Seconds after the last upload until every file was queryable. */
  drainSeconds: number;
  /** [seconds since start, etl, enrich, warehouse] every few seconds. */
  depths: [number, number, number, number][];
  maxDepth: { etl: number; enrich: number; warehouse: number };
  /** The warehouse queue's largest depth in the first and in the second half of the load. */
  warehouseHalves: [number, number];
  maxRssMB: number;
}

/**
 * `rate` small files a second for `seconds`, uploaded on a schedule (not waiting for each other), the
 * warehouse polled every `pollMs` for the files it holds: the time from a file's upload to its first
 * sighting is its upload → queryable time (± `pollMs`).
 */
export async function sustained(
  runtime: Runtime,
  query: Query,
  body: (i: number) => string,
  options: { rate: number; seconds: number; pollMs: number; progress: (line: string) => void },
): Promise<SustainedResult> {
  const { rate, seconds, pollMs } = options;
  const total = rate * seconds;
  const prefix = 'sustained/2026/01/01/';
  const uploadedAt = new Map<string, number>();
  const latency = new Map<string, number>();
  const depths: SustainedResult['depths'] = [];
  let maxRss = 0;
  const t0 = performance.now();
  let uploading = true;
  const sampler = (async () => {
    while (uploading || latency.size < total) {
      const d = await runtime.queueDepths();
      depths.push([(performance.now() - t0) / 1000, d.etl ?? 0, d.enrich ?? 0, d.warehouse ?? 0]);
      maxRss = Math.max(maxRss, process.memoryUsage().rss);
      if (depths.length % 6 === 0) {
        options.progress(
          `    ${((performance.now() - t0) / 1000).toFixed(0)} s: ${uploadedAt.size} uploaded, ${latency.size} queryable; queues etl ${d.etl}, enrich ${d.enrich}, warehouse ${d.warehouse}`,
        );
      }
      if (performance.now() - t0 > (seconds + 300) * 1000) break;
      await sleep(5000);
    }
  })();
  const poller = (async () => {
    while (uploading || latency.size < total) {
      const seen = await loaded(query, prefix);
      const now = performance.now();
      for (const key of seen) {
        const at = uploadedAt.get(key);
        if (at !== undefined && !latency.has(key)) latency.set(key, (now - at) / 1000);
      }
      if (performance.now() - t0 > (seconds + 300) * 1000) break;
      await sleep(pollMs);
    }
  })();
  const puts: Promise<unknown>[] = [];
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const key = `${prefix}f${String(i).padStart(5, '0')}.jsonl`;
    uploadedAt.set(key, performance.now());
    puts.push(runtime.s3.send(new PutObjectCommand({ Bucket: 'raw', Key: key, Body: body(i) })));
  }
  await Promise.all(puts);
  const uploadEnd = performance.now();
  uploading = false;
  await Promise.all([poller, sampler]);
  const done = [...latency.values()].sort((a, b) => a - b);
  const lastSeen = Math.max(...[...latency.entries()].map(([k, l]) => uploadedAt.get(k)! + l * 1000));
  const half = (seconds / 2) * 1000;
  const during = depths.filter(([t]) => t * 1000 <= uploadEnd - t0);
  const maxOf = (rows: typeof depths, i: number) => Math.max(0, ...rows.map((r) => r[i]!));
  return {
    files: total,
    ratePerSecond: rate,
    seconds,
    lost: total - latency.size,
    p50: percentile(done, 0.5),
    p95: percentile(done, 0.95),
    max: done.at(-1) ?? Number.NaN,
    drainSeconds: Math.max(0, (lastSeen - uploadEnd) / 1000),
    depths,
    maxDepth: { etl: maxOf(during, 1), enrich: maxOf(during, 2), warehouse: maxOf(during, 3) },
    warehouseHalves: [
      maxOf(
        during.filter(([t]) => t * 1000 <= half),
        3,
      ),
      maxOf(
        during.filter(([t]) => t * 1000 > half),
        3,
      ),
    ],
    maxRssMB: maxRss / 2 ** 20,
  };
}

/** Upload → queryable of one file: uploaded, then the warehouse polled every `pollMs`. */
export async function uploadToQueryable(
  runtime: Runtime,
  query: Query,
  key: string,
  body: string,
  pollMs = 100,
  timeoutMs = 300_000,
): Promise<number> {
  const t0 = performance.now();
  await runtime.s3.send(new PutObjectCommand({ Bucket: 'raw', Key: key, Body: body }));
  const prefix = key;
  while (performance.now() - t0 < timeoutMs) {
    if ((await loaded(query, prefix)).has(key)) return (performance.now() - t0) / 1000;
    await sleep(pollMs);
  }
  throw new Error(`${key}: not queryable after ${timeoutMs / 1000} s`);
}

/**
 * JSONL readings, `lines` of them, spread evenly over `days` UTC days from 2025-01-01 (the same bytes
 * per line whatever the span: the timestamps have one format).
 */
export function spanFile(lines: number, days: number, seed: number): string {
  const start = Date.UTC(2025, 0, 1);
  const step = (days * 86_400_000) / lines;
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    out.push(
      JSON.stringify({
        ts: new Date(start + Math.floor(i * step)).toISOString(),
        device: `press-0${(i + seed) % 4}`,
        metric: i % 2 === 0 ? 'temperature' : 'pressure',
        value: Math.round(((i * 7919 + seed) % 1000) * 10) / 100,
      }),
    );
  }
  return `${out.join('\n')}\n`;
}
