/**
 * `npm run bench` (≈10 min) / `npm run bench -- --quick` (≈1 min). Every figure is a ratio against a
 * reference measured in the same run on the same machine; nothing here is asserted, it is reported:
 * bench/results/latest.json and bench/results/latest.md.
 */

import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import { bigJsonl, corpus, type Format } from './corpus.js';
import { benchTmp } from './env.js';
import { ceilingFile, etlFile, parseOnly, referenceFile } from './etl-local.js';

const run = promisify(execFile);
const quick = process.argv.includes('--quick');
/**
 * `--only=etl,naive,memory,latency,burst,sustained,span,warehouse,api` runs some sections (`stack` =
 * the last six).
 */
const only = process.argv
  .find((a) => a.startsWith('--only='))
  ?.slice('--only='.length)
  .split(',');
const STACK = ['latency', 'burst', 'sustained', 'span', 'warehouse', 'api'];
const want = (section: string) =>
  !only ||
  only.includes(section) ||
  (STACK.includes(section) && only.includes('stack')) ||
  (section === 'stack' && STACK.some(want));
const SIZE = {
  lines: quick ? 100_000 : 1_000_000,
  naiveLines: quick ? 50_000 : 200_000,
  memoryBytes: quick ? 100 * 1024 * 1024 : 1024 * 1024 * 1024,
  latencyFiles: quick ? 10 : 50,
  burstFiles: quick ? 100 : 1000,
  sustainedSeconds: quick ? 20 : 120,
  sustainedRate: 10,
  spanLines: quick ? 50_000 : 200_000,
  warehouseBig: quick ? 1_000_000 : 10_000_000,
  warehouseAppend: 100_000,
  warehouseBatches: 8,
  apiRows: quick ? 1_000_000 : 10_000_000,
  apiRequests: quick ? 10 : 40,
};
const root = join(import.meta.dirname);
const corpusDir = join(root, '.corpus');
const results: Record<string, unknown> = {
  quick,
  date: new Date().toISOString(),
  machine: { cpus: (await import('node:os')).cpus().length },
};
const rows: {
  measure: string;
  value: string;
  reference: string;
  ratio: string;
  target: string;
  holds: string;
}[] = [];

function log(line: string) {
  process.stdout.write(`${line}\n`);
}
function report(
  measure: string,
  value: string,
  reference: string,
  ratio: number | undefined,
  target: string,
  holds: boolean | undefined,
) {
  rows.push({
    measure,
    value,
    reference,
    ratio: ratio === undefined ? '' : ratio.toFixed(2),
    target,
    holds: holds === undefined ? '' : holds ? 'yes' : 'no',
  });
  log(
    `  ${measure}: ${value} | ref ${reference} | ratio ${ratio?.toFixed(2) ?? '-'} | target ${target} ${holds === undefined ? '' : holds ? '✓' : '✗'}`,
  );
}
async function time<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await fn();
  return [v, (performance.now() - t0) / 1000];
}
/**
 * The median of `RUNS` timed runs: single runs here vary by up to 30% (page cache, JIT, the other
 * process on two cores). Every side of a ratio is measured the same way.
 */
const RUNS = 3;
/** A line while a section runs, so minutes of work are not silent (stderr: the report stays clean). */
function progress(line: string) {
  process.stderr.write(`${line}\n`);
}
async function median<T>(fn: () => Promise<T>, label?: string): Promise<[T, number]> {
  const runs: [T, number][] = [];
  for (let i = 0; i < RUNS; i++) {
    runs.push(await time(fn));
    if (label) progress(`    ${label}: run ${i + 1} of ${RUNS}, ${runs.at(-1)![1].toFixed(2)} s`);
  }
  runs.sort((a, b) => a[1] - b[1]);
  return runs[Math.floor(RUNS / 2)]!;
}

const tmp = benchTmp;
await mkdir(join(root, 'results'), { recursive: true });

// 1. ETL throughput, per format, against two references measured here: the same output made with
// DuckDB's own readers and plain SQL, minus line numbers and rejects (`referenceFile`: what the
// ETL's accounting costs), and DuckDB's bare reader straight into Parquet (the ceiling, which does far
// less). Per core beside published per-core figures of log shippers parsing with regular expressions.
const db = await DuckDBInstance.create(':memory:', { temp_directory: join(tmp, 'duckdb'), threads: '2' });
const CORES = (await import('node:os')).cpus().length;
/** Per core, MiB/s: Vector's test harness on 2 vCPU, regex parsing (vector.dev "Performance"). */
const SHIPPERS = { 'Fluent Bit': 20, Vector: 13 };
if (want('etl')) {
  log(`ETL throughput (${SIZE.lines.toLocaleString()} lines per format)`);
  const targets: Record<Format, number> = { jsonl: 0.8, csv: 0.8, syslog: 0.6, template: 0.6 };
  const etlResults: Record<string, unknown> = {};
  for (const format of ['jsonl', 'csv', 'syslog', 'template'] as Format[]) {
    const file = await corpus(corpusDir, format, SIZE.lines, format === 'jsonl' || format === 'csv');
    await etlFile(db, file.path, tmp); // warm-up (page cache, DuckDB)
    const [etl, ours] = await median(() => etlFile(db, file.path, tmp), `${format} ETL`);
    const [reference, referenceSeconds] = await median(
      () => referenceFile(db, file.path, format, tmp),
      `${format} same-output reference`,
    );
    const [, ceiling] = await median(() => ceilingFile(db, file.path, format, tmp), `${format} ceiling`);
    const parse = await parseOnly(db, file.path);
    const [, parseSeconds] = await median(parse.run);
    parse.close();
    const mbps = file.bytes / 1e6 / ours;
    const mibPerCore = file.bytes / 2 ** 20 / ours / CORES;
    const ratio = referenceSeconds / ours;
    etlResults[format] = {
      bytes: file.bytes,
      lines: etl.lines,
      rows: etl.rows,
      seconds: ours,
      referenceSeconds,
      referenceRows: reference.rows,
      ratioToReference: ratio,
      ceilingSeconds: ceiling,
      ratioToCeiling: ceiling / ours,
      mbPerSecond: mbps,
      mibPerSecondPerCore: mibPerCore,
      rowsPerSecond: etl.rows / ours,
      parseOnlySeconds: parseSeconds,
      parseOnlyBound: ceiling / parseSeconds,
    };
    report(
      `ETL ${format}`,
      `${mbps.toFixed(1)} MB/s, ${Math.round(etl.rows / ours).toLocaleString()} rows/s (${etl.rows.toLocaleString()} rows)`,
      `same output, plain SQL ${(file.bytes / 1e6 / referenceSeconds).toFixed(1)} MB/s (${reference.rows.toLocaleString()} rows)`,
      ratio,
      `≥ ${targets[format]}× reference`,
      ratio >= targets[format],
    );
    report(
      `  ${format}: per core`,
      `${mibPerCore.toFixed(1)} MiB/s`,
      Object.entries(SHIPPERS)
        .map(([name, v]) => `${name} ≈ ${v} MiB/s`)
        .join(', '),
      mibPerCore / SHIPPERS['Fluent Bit'],
      'reported (ratio to Fluent Bit)',
      undefined,
    );
    report(
      `  ${format}: against the bare reader → Parquet`,
      `${mbps.toFixed(1)} MB/s`,
      `ceiling ${(file.bytes / 1e6 / ceiling).toFixed(1)} MB/s`,
      ceiling / ours,
      'reported (less work than the ETL)',
      undefined,
    );
    report(
      `  ${format}: its parse step alone (bounds the ratio above)`,
      `${(file.bytes / 1e6 / parseSeconds).toFixed(1)} MB/s`,
      `ceiling ${(file.bytes / 1e6 / ceiling).toFixed(1)} MB/s`,
      ceiling / parseSeconds,
      'reported',
      undefined,
    );
    if (file.gz) {
      const [, gzOurs] = await median(() => etlFile(db, file.gz!, tmp));
      const [, gzCeiling] = await median(() => ceilingFile(db, file.gz!, format, tmp));
      etlResults[`${format}.gz`] = { seconds: gzOurs, ceilingSeconds: gzCeiling, ratio: gzCeiling / gzOurs };
      report(
        `  ${format}.gz`,
        `${(file.bytes / 1e6 / gzOurs).toFixed(1)} MB/s (uncompressed)`,
        `ceiling ${(file.bytes / 1e6 / gzCeiling).toFixed(1)} MB/s`,
        gzCeiling / gzOurs,
        'reported',
        undefined,
      );
    }
  }
  results.etl = etlResults;
}

// 2. Against what a user might write: readline + JSON.parse + a JS Parquet writer.
if (want('naive')) {
  log(`Naive baseline (${SIZE.naiveLines.toLocaleString()} JSONL lines)`);
  {
    const file = await corpus(corpusDir, 'jsonl', SIZE.naiveLines);
    const parquet = await import('@dsnp/parquetjs');
    const [count, naive] = await median(async () => {
      const schema = new parquet.ParquetSchema({
        ts: { type: 'TIMESTAMP_MILLIS' },
        device: { type: 'UTF8' },
        metric: { type: 'UTF8' },
        value: { type: 'DOUBLE' },
        unit: { type: 'UTF8', optional: true },
      });
      const writer = await parquet.ParquetWriter.openFile(schema, join(tmp, 'naive.parquet'));
      let n = 0;
      for await (const line of createInterface({
        input: createReadStream(file.path),
        crlfDelay: Number.POSITIVE_INFINITY,
      })) {
        try {
          const o = JSON.parse(line) as {
            ts: string;
            device: string;
            metric: string;
            value: number;
            unit?: string;
          };
          const ts = new Date(o.ts);
          if (Number.isNaN(ts.getTime())) continue;
          await writer.appendRow({ ts, device: o.device, metric: o.metric, value: o.value, unit: o.unit });
          n++;
        } catch {
          // a naive writer drops bad lines
        }
      }
      await writer.close();
      return n;
    });
    const [etl, ours] = await median(() => etlFile(db, file.path, tmp));
    const speedup = etl.rows / ours / (count / naive);
    results.naive = { lines: SIZE.naiveLines, naiveSeconds: naive, oursSeconds: ours, speedup };
    report(
      'ETL vs naive (readline + JSON.parse + parquetjs)',
      `${Math.round(etl.rows / ours).toLocaleString()} rows/s`,
      `naive ${Math.round(count / naive).toLocaleString()} rows/s`,
      speedup,
      '≥ 5×',
      speedup >= 5,
    );
  }
}
db.closeSync();

// 3. Peak RSS of the ETL process on a big file (own process, DuckDB limited as in a 512 MB Lambda).
if (want('memory')) {
  log(`Memory (${(SIZE.memoryBytes / 1024 / 1024).toFixed(0)} MB JSONL file)`);
  {
    const path = await bigJsonl(corpusDir, SIZE.memoryBytes);
    const child = async (mode: string) =>
      JSON.parse(
        (
          await run(process.execPath, ['--import', 'tsx', join(root, 'etl-child.ts'), mode, path], {
            maxBuffer: 1 << 20,
          })
        ).stdout
          .trim()
          .split('\n')
          .pop()!,
      ) as {
        seconds: number;
        maxRssMB: number;
        duckdbMemoryLimit: string;
      };
    const ours = await child('etl');
    const ceiling = await child('ceiling');
    results.memory = { bytes: SIZE.memoryBytes, ours, ceiling };
    report(
      'Peak RSS, ETL of the big file',
      `${ours.maxRssMB.toFixed(0)} MB (${ours.seconds.toFixed(1)} s; 512 MB function, DuckDB ${ours.duckdbMemoryLimit})`,
      `ceiling process ${ceiling.maxRssMB.toFixed(0)} MB`,
      ours.maxRssMB / 512,
      '≤ 512 MB (ratio to 512)',
      ours.maxRssMB <= 512,
    );
  }
}

// 4–6 need the embedded stack.
if (want('stack')) {
  // The embedded emulators start here; their endpoints were set by ./env.js (S3_ENDPOINT would skip them).
  delete process.env.S3_ENDPOINT;
  delete process.env.SQS_ENDPOINT;
  const { startRuntime } = await import('../local/runtime.js');
  const runtime = await startRuntime();
  const { PutObjectCommand, HeadObjectCommand, CreateBucketCommand } = await import('@aws-sdk/client-s3');
  const { queryLocal } = await import('../local/query.js');
  const small = (i: number) =>
    Array.from({ length: 50 }, (_, j) =>
      JSON.stringify({
        ts: new Date(Date.UTC(2026, 0, 1) + (i * 50 + j) * 1000).toISOString(),
        device: `d${i % 7}`,
        metric: 'm',
        value: j,
      }),
    ).join('\n');

  async function loadedKeys(prefix: string): Promise<Map<string, { rows: number; lines: number }>> {
    const { rows } = await queryLocal(
      `SELECT source_key, count(*) AS n, count(DISTINCT source_line) AS l FROM readings WHERE source_key LIKE '${prefix}%' GROUP BY 1`,
    ).catch((err: Error) => {
      if (!err.message.startsWith('no warehouse yet')) log(`    (query failed: ${err.message})`);
      return { rows: [] as Record<string, unknown>[] };
    });
    return new Map(rows.map((r) => [String(r.source_key), { rows: Number(r.n), lines: Number(r.l) }]));
  }

  try {
    // 4. Upload → queryable latency, one small file at a time.
    if (want('latency')) {
      log(`Latency (${SIZE.latencyFiles} small files, upload → queryable)`);
      const latencies: number[] = [];
      for (let i = 0; i < SIZE.latencyFiles; i++) {
        if (i > 0 && i % 10 === 0) progress(`    ${i} of ${SIZE.latencyFiles} files timed`);
        const key = `lat/2026/01/01/f${i}.jsonl`;
        const t0 = performance.now();
        await runtime.s3.send(new PutObjectCommand({ Bucket: 'raw', Key: key, Body: small(i) }));
        for (;;) {
          if ((await loadedKeys(key)).has(key)) break;
          await new Promise((r) => setTimeout(r, 25));
        }
        latencies.push((performance.now() - t0) / 1000);
      }
      latencies.sort((a, b) => a - b);
      const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
      results.latency = { files: latencies.length, p50: p(0.5), p95: p(0.95), max: latencies.at(-1) };
      report(
        'Upload → queryable p50 / p95',
        `${p(0.5).toFixed(2)} s / ${p(0.95).toFixed(2)} s`,
        '3 s',
        p(0.95) / 3,
        'p95 ≤ 3 s',
        p(0.95) <= 3,
      );
    }

    // 5. A burst of small files: drain time, files/s, exactly once.
    if (want('burst')) {
      log(`Burst (${SIZE.burstFiles} files at once)`);
      const t0 = performance.now();
      const keys = Array.from(
        { length: SIZE.burstFiles },
        (_, i) => `burst/2026/01/01/f${String(i).padStart(4, '0')}.jsonl`,
      );
      for (let i = 0; i < keys.length; i += 32) {
        await Promise.all(
          keys
            .slice(i, i + 32)
            .map((key, j) =>
              runtime.s3.send(new PutObjectCommand({ Bucket: 'raw', Key: key, Body: small(i + j) })),
            ),
        );
      }
      let loaded = new Map<string, { rows: number; lines: number }>();
      const deadline = Date.now() + (quick ? 120_000 : 480_000);
      let shown = 0;
      while (Date.now() < deadline) {
        loaded = await loadedKeys('burst/');
        if (loaded.size === keys.length) break;
        if (performance.now() - shown > 10_000) {
          shown = performance.now();
          progress(
            `    ${loaded.size} of ${keys.length} files in the warehouse after ${((shown - t0) / 1000).toFixed(0)} s`,
          );
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      const drain = (performance.now() - t0) / 1000;
      const lost = keys.filter((k) => !loaded.has(k)).length;
      const duplicated = [...loaded.values()].filter((v) => v.rows !== v.lines || v.rows !== 50).length;
      results.burst = {
        files: keys.length,
        drainSeconds: drain,
        filesPerSecond: keys.length / drain,
        lost,
        duplicated,
      };
      report(
        'Burst drain',
        `${drain.toFixed(1)} s, ${(keys.length / drain).toFixed(1)} files/s`,
        `${keys.length} files`,
        undefined,
        '0 lost, 0 duplicated',
        lost === 0 && duplicated === 0,
      );
      report(
        `Burst throughput, ${keys.length} files at once (every stage on this machine's ${CORES} cores)`,
        `${(keys.length / drain).toFixed(1)} files/s`,
        '50 files/s',
        keys.length / drain / 50,
        '≥ 50 files/s',
        keys.length / drain >= 50,
      );
      log(`    lost ${lost}, duplicated ${duplicated}`);
    }

    // 5b. Sustained load: files at a steady rate; queue depths over time, upload → queryable, RSS.
    if (want('sustained')) {
      log(`Sustained load (${SIZE.sustainedRate} files/s for ${SIZE.sustainedSeconds} s)`);
      const { sustained } = await import('./load.js');
      const r = await sustained(runtime, async (sql) => (await queryLocal(sql)).rows, small, {
        rate: SIZE.sustainedRate,
        seconds: SIZE.sustainedSeconds,
        pollMs: 250,
        progress,
      });
      results.sustained = r;
      log(
        `    queue depths (s: etl/enrich/warehouse): ${r.depths.map(([t, e, n, w]) => `${t.toFixed(0)}: ${e}/${n}/${w}`).join(', ')}`,
      );
      report(
        `Sustained ${r.ratePerSecond} files/s for ${r.seconds} s: upload → queryable p50 / p95`,
        `${r.p50.toFixed(2)} s / ${r.p95.toFixed(2)} s (max ${r.max.toFixed(2)} s, ${r.lost} not loaded)`,
        '5 s',
        r.p95 / 5,
        'p95 ≤ 5 s',
        r.p95 <= 5 && r.lost === 0,
      );
      const [first, second] = r.warehouseHalves;
      report(
        '  warehouse queue, largest depth in the first / second half of the load',
        `${first} / ${second} messages (etl ≤ ${r.maxDepth.etl}, enrich ≤ ${r.maxDepth.enrich})`,
        `drained ${r.drainSeconds.toFixed(1)} s after the last upload`,
        undefined,
        'bounded: second half ≤ first + 10',
        second <= first + 10,
      );
      report(
        '  peak RSS of the stack (one process)',
        `${r.maxRssMB.toFixed(0)} MB`,
        '',
        undefined,
        'reported',
        undefined,
      );
    }

    // 5c. A file spanning a year against a file of the same size spanning a day: upload → queryable.
    if (want('span')) {
      log(`Span (${SIZE.spanLines.toLocaleString()} lines over 365 days vs over 1 day)`);
      const { spanFile, uploadToQueryable } = await import('./load.js');
      const q = async (sql: string) => (await queryLocal(sql)).rows;
      const year = spanFile(SIZE.spanLines, 365, 1);
      const day = spanFile(SIZE.spanLines, 1, 1);
      let n = 0;
      const [, yearSeconds] = await median(
        () => uploadToQueryable(runtime, q, `span/2026/01/01/year-${n++}.jsonl`, year),
        '365-day file',
      );
      const [, daySeconds] = await median(
        () => uploadToQueryable(runtime, q, `span/2026/01/01/day-${n++}.jsonl`, day),
        '1-day file',
      );
      results.span = { lines: SIZE.spanLines, bytes: year.length, yearSeconds, daySeconds };
      report(
        `A 365-day file vs a 1-day file of the same size (${(year.length / 1e6).toFixed(1)} MB): upload → queryable`,
        `${yearSeconds.toFixed(2)} s`,
        `1-day ${daySeconds.toFixed(2)} s`,
        yearSeconds / daySeconds,
        '≤ 2×',
        yearSeconds / daySeconds <= 2,
      );
    }

    // 6. Warehouse append: 100,000 rows into an empty warehouse vs one holding many rows.
    if (want('warehouse')) {
      log(
        `Warehouse append (${SIZE.warehouseAppend.toLocaleString()} rows: empty vs ${SIZE.warehouseBig.toLocaleString()} rows)`,
      );
      const { loadBatch } = await import('../functions/warehouse/load-batch.js');
      const { WarehouseFiles } = await import('../functions/warehouse/warehouse-file.js');
      const { bundledReference } = await import('../functions/contracts/reference.js');
      const { sqlString } = await import('../functions/core/duckdb.js');
      const ref = {
        ...bundledReference(join(root, '..', 'config')),
        sources: { devices: 'bundled', errorCodes: 'bundled' },
      };
      const rowsSql = (n: number, offset: number) =>
        `SELECT TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(i) AS ts, 'bench' AS factory, 'd' || (i % 50) AS device, 'm' || (i % 5) AS metric,
      random() AS value, 'u' AS unit, 'src' || ${offset} AS source_key, i AS source_line, '2026-01-01' AS date, 'e' AS source_etag,
      NULL::VARCHAR AS model, NULL::VARCHAR AS line, NULL::VARCHAR AS site, NULL::VARCHAR AS criticality,
      NULL::DOUBLE AS baseline_median, NULL::DOUBLE AS baseline_mad, NULL::DOUBLE AS anomaly_score, false AS is_anomaly
     FROM range(${n}) t(i)`;
      const appendInto = async (bucket: string, preload: number) => {
        await runtime.s3.send(new CreateBucketCommand({ Bucket: bucket }));
        const dir = await mkdtemp(join(tmp, `${bucket}-`));
        const deps = {
          files: new WarehouseFiles(bucket, dir),
          warehouseBucket: bucket,
          tmpDir: dir,
          baselineDays: 7,
          reference: async () => ref,
        };
        const c = await (await DuckDBInstance.create(':memory:')).connect();
        const put = async (name: string, sql: string) => {
          const path = join(dir, `${name}.parquet`);
          await c.run(`COPY (${sql}) TO ${sqlString(path)} (FORMAT parquet)`);
          const { readFile } = await import('node:fs/promises');
          await runtime.s3.send(
            new PutObjectCommand({
              Bucket: 'lake',
              Key: `bench/${bucket}/${name}.parquet`,
              Body: await readFile(path),
            }),
          );
          const head = await runtime.s3.send(
            new HeadObjectCommand({ Bucket: 'lake', Key: `bench/${bucket}/${name}.parquet` }),
          );
          return {
            kind: 'data' as const,
            table: 'readings' as const,
            bucket: 'lake',
            key: `bench/${bucket}/${name}.parquet`,
            eTag: head.ETag!.replace(/"/g, ''),
            rows: 0,
            sourceKey: `src-${name}`,
            sourceETag: 'e',
            rawCreatedAt: new Date().toISOString(),
            enrichedAt: new Date().toISOString(),
          };
        };
        // The preload (or one row) is folded into the base, as a compaction leaves it. Then batches
        // with the default policy: the delta grows, and is folded into a new level-1 file whenever it
        // reaches its size (or, in a small warehouse, into a new base); the commit is timed apart from
        // what follows it.
        const always = { minBytes: 0, baseFraction: 0 };
        await loadBatch([await put('preload', rowsSql(Math.max(1, preload), 1))], {
          ...deps,
          compaction: always,
        });
        const commits: number[] = [];
        const folds: { level: string; seconds: number }[] = [];
        for (let i = 0; i < SIZE.warehouseBatches; i++) {
          const msg = await put(`append-${i}`, rowsSql(SIZE.warehouseAppend, 2 + i));
          const stats = await loadBatch([msg], deps);
          commits.push(stats.committedSeconds);
          if (stats.compacted) {
            folds.push({ level: stats.compacted, seconds: stats.seconds - stats.committedSeconds });
          }
          progress(
            `    ${bucket}: batch ${i + 1} of ${SIZE.warehouseBatches} committed in ${stats.committedSeconds.toFixed(2)} s${stats.compacted ? `, then folded into a new ${stats.compacted} in ${(stats.seconds - stats.committedSeconds).toFixed(2)} s` : ''}`,
          );
        }
        // A base compaction of the whole: what the level-1 folds put off.
        const last = await put('fold', rowsSql(1, 99));
        const foldStats = await loadBatch([last], { ...deps, compaction: always });
        c.closeSync();
        const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
        return {
          meanCommit: mean(commits),
          commits,
          folds,
          baseFold: foldStats.seconds - foldStats.committedSeconds,
        };
      };
      const empty = await appendInto('wh-empty', 1);
      const big = await appendInto('wh-big', SIZE.warehouseBig);
      results.warehouseAppend = {
        rows: SIZE.warehouseAppend,
        batches: SIZE.warehouseBatches,
        empty,
        big,
        bigRows: SIZE.warehouseBig,
        ratio: big.meanCommit / empty.meanCommit,
      };
      report(
        `Warehouse commit of ${SIZE.warehouseAppend.toLocaleString()} rows, ${SIZE.warehouseBig.toLocaleString()}-row vs empty warehouse (mean of ${SIZE.warehouseBatches} batches, delta growing)`,
        `${big.meanCommit.toFixed(2)} s`,
        `empty ${empty.meanCommit.toFixed(2)} s`,
        big.meanCommit / empty.meanCommit,
        '≤ 1.5×',
        big.meanCommit / empty.meanCommit <= 1.5,
      );
      const foldLine = (w: typeof big) =>
        w.folds.length === 0 ? 'none' : w.folds.map((f) => `${f.level} ${f.seconds.toFixed(2)} s`).join(', ');
      report(
        '  after commits: folds into a new level-1 file or base (off the commit, before the next batch)',
        foldLine(big),
        `empty: ${foldLine(empty)}`,
        undefined,
        'reported',
        undefined,
      );
      report(
        `  a base compaction, ${SIZE.warehouseBig.toLocaleString()}-row base (once per ≥ 64 MB / ¼ base appended)`,
        `${big.baseFold.toFixed(2)} s`,
        `empty ${empty.baseFold.toFixed(2)} s`,
        undefined,
        'reported',
        undefined,
      );
    }

    // 7. The read API over a warehouse of 10M readings: p50/p95 per request vs the same SQL on plain DuckDB.
    if (want('api')) {
      log(`Read API (${SIZE.apiRows.toLocaleString()} readings, ${SIZE.apiRequests} requests per kind)`);
      const { benchApi } = await import('./api.js');
      const api = await benchApi({
        s3: runtime.s3,
        tmp,
        rows: SIZE.apiRows,
        requests: SIZE.apiRequests,
        log,
      });
      results.api = api;
      for (const [name, r] of Object.entries(api.routes)) {
        report(
          `API ${name}: p50 / p95`,
          `${r.p50.toFixed(0)} / ${r.p95.toFixed(0)} ms`,
          `plain DuckDB ${r.plainP50.toFixed(0)} / ${r.plainP95.toFixed(0)} ms`,
          r.p95 / Math.max(1, r.plainP95),
          'p95 ≤ 300 ms',
          r.p95 <= 300,
        );
      }
    }
  } finally {
    await runtime.stop();
  }
}

const table = [
  '| measure | value | reference (same run) | ratio | target | holds |',
  '|---|---|---|---|---|---|',
  ...rows.map(
    (r) => `| ${r.measure} | ${r.value} | ${r.reference} | ${r.ratio} | ${r.target} | ${r.holds} |`,
  ),
].join('\n');
results.table = rows;
// Only a complete, full-size run is `latest` (the README's figures).
const name = only ? 'partial' : quick ? 'quick' : 'latest';
await writeFile(join(root, 'results', `${name}.json`), `${JSON.stringify(results, null, 2)}\n`);
await writeFile(join(root, 'results', `${name}.md`), `${table}\n`);
log(`\n${table}\n`);
await rm(tmp, { recursive: true, force: true });
process.exit(0);
