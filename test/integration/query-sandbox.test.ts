import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ScratchS3, startScratchS3 } from '../helpers/scratch-s3.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The query API's and CLI's limits, with the faults injected for real: a function that allocates
 * outside DuckDB's buffer manager, a query that does not stop when interrupted, a query process that
 * dies or whose parent dies — against a real warehouse (test/fixtures/warehouse-previous: a delta and
 * its base, written by the pipeline's previous release) in an embedded S3 on a port of its own.
 */

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'warehouse-previous');
const fixture = JSON.parse(readFileSync(join(FIXTURE, 'fixture.json'), 'utf8')) as {
  base: { baseKey: string };
  counts: { readings: number };
};
const DELTA = 'telemetry-delta.duckdb';

/** One row, one call: DuckDB sees the interrupt only when it returns (≈ 2.5 ns per cell, O(n) memory). */
const LEVENSHTEIN = `SELECT levenshtein(repeat('a', $n), repeat('b', $n)) AS d`;
/** A levenshtein that runs for minutes. */
const ENDLESS = { n: 300_000 };

let root: string;
let s3: ScratchS3;
let client: S3Client;
let sandbox: typeof import('../../functions/warehouse/query-sandbox.js');
let QueryError: typeof import('../../functions/warehouse/query.js').QueryError;
const readers: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  // The query process inherits this environment: it downloads the copies itself.
  s3 = await startScratchS3('query-sandbox', ['warehouse']);
  ({ root, client } = s3);
  await writeFile(join(root, DELTA), fixtureFile(DELTA));
  await put(DELTA, join(root, DELTA));
  await put(fixture.base.baseKey, fixtureFile(fixture.base.baseKey));
  sandbox = await import('../../functions/warehouse/query-sandbox.js');
  ({ QueryError } = await import('../../functions/warehouse/query.js'));
});

afterAll(async () => {
  await Promise.all(readers.map((r) => r.close()));
  await s3?.stop();
});

function fixtureFile(key: string): Buffer {
  return gunzipSync(readFileSync(join(FIXTURE, 'warehouse', `${key}.gz`)));
}

async function put(key: string, body: Buffer | string): Promise<void> {
  const bytes = typeof body === 'string' ? readFileSync(body) : body;
  await client.send(new PutObjectCommand({ Bucket: 'warehouse', Key: key, Body: bytes }));
}

/** A sandboxed reader on copies of its own, closed after the tests. */
async function reader(timeoutSeconds?: number) {
  const dir = await mkdtemp(join(root, 'reader-'));
  const r = new sandbox.SandboxedReader('warehouse', dir, timeoutSeconds ? { timeoutSeconds } : {});
  readers.push(r);
  return r;
}

/** A process that has not exited (a zombie has: it waits only to be reaped). */
function running(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** The peak resident memory of a process, in MB (VmHWM). */
function peakRssMB(pid: number): number {
  const kB = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Math.round(Number(kB) / 1024);
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error('expected the query to fail');
    },
    (err: Error) => err,
  );
}

describe('SandboxedReader', () => {
  it('answers queries on the warehouse, in a process it reuses', async () => {
    const r = await reader();
    const first = await r.query('SELECT count(*) AS n FROM readings');
    expect(first?.rows).toEqual([{ n: String(fixture.counts.readings) }]);
    const pid = r.pid;
    expect(pid).toBeDefined();
    expect((await r.query('SELECT 42 AS answer'))?.rows).toEqual([{ answer: 42 }]);
    expect(r.pid).toBe(pid);
  });

  it('reports the download of each warehouse file (the CLI draws it), and nothing when the copies are current', async () => {
    const dir = await mkdtemp(join(root, 'reader-'));
    const seen: { key: string; bytes: number; total: number | undefined }[] = [];
    const r = new sandbox.SandboxedReader('warehouse', dir, { onDownload: (p) => seen.push(p) });
    readers.push(r);
    await r.query('SELECT 1 AS n');
    for (const key of [DELTA, fixture.base.baseKey]) {
      const events = seen.filter((e) => e.key === key);
      expect(events[0], key).toMatchObject({ bytes: 0 });
      expect(events.at(-1)!.bytes, key).toBe(events.at(-1)!.total);
      expect(events.at(-1)!.bytes, key).toBeGreaterThan(0);
    }
    seen.length = 0;
    await r.query('SELECT 1 AS n');
    expect(seen).toEqual([]);
  });

  it('fails an allocation beyond the memory budget at once, and keeps working', async () => {
    const r = await reader();
    await r.query('SELECT 1');
    const pid = r.pid!;
    const started = performance.now();
    const err = await rejection(r.query(`SELECT length(repeat('x', 2000000000)) AS n`));
    const ms = Math.round(performance.now() - started);
    expect(err).toBeInstanceOf(QueryError);
    expect(err.message).toMatch(/^Out of Memory Error: Failed to allocate block of 2147483648 bytes/);
    // In process it ran 31 s, past the 25 s timeout, and peaked at 4 GB resident.
    expect(ms).toBeLessThan(10_000);
    console.info(
      `repeat('x', 2000000000): QueryError after ${ms} ms; query process peak RSS ${peakRssMB(pid)} MB`,
    );
    expect((await r.query('SELECT count(*) AS n FROM readings'))?.rows).toEqual([
      { n: String(fixture.counts.readings) },
    ]);
    expect(r.pid).toBe(pid);
  });

  it('stops a query that ignores the interrupt by killing its process; the other queries are answered', async () => {
    const timeoutSeconds = 6;
    const r = await reader(timeoutSeconds);
    // An innocent query of ≈ 3.5 s (half the timeout and more, on this machine): sent once the stuck
    // query has been interrupted, it is still running when that query's process is killed (2 s later).
    const probe = 10_000;
    let fastest = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 2; i++) {
      const t = performance.now();
      await r.query(LEVENSHTEIN, { n: probe });
      fastest = Math.min(fastest, performance.now() - t);
    }
    const n = Math.round(probe * Math.sqrt(3500 / fastest));
    const pid = r.pid!;

    let stuckFailedAt = 0;
    const stuck = rejection(r.query(LEVENSHTEIN, ENDLESS)).then((err) => {
      stuckFailedAt = performance.now();
      return err;
    });
    await new Promise((resolve) => setTimeout(resolve, timeoutSeconds * 1000));
    let innocentAt = 0;
    const innocent = r.query(LEVENSHTEIN, { n }).then((result) => {
      innocentAt = performance.now();
      return result;
    });
    const err = await stuck;
    expect(err).toBeInstanceOf(QueryError);
    expect(err.message).toBe(`stopped after ${timeoutSeconds} s`);
    await waitFor(async () => !running(pid), 5000, 'the killed query process to be gone');

    expect((await innocent)?.rows).toEqual([{ d: String(n) }]);
    // Answered after its first process was killed: it was sent again, to the new one.
    expect(innocentAt).toBeGreaterThan(stuckFailedAt);
    expect(r.pid).toBeDefined();
    expect(r.pid).not.toBe(pid);
    expect((await r.query('SELECT 42 AS answer'))?.rows).toEqual([{ answer: 42 }]);
  });

  it('fails the queries of a process that died, and starts a new one for the next', async () => {
    const r = await reader();
    await r.query('SELECT 1');
    const pid = r.pid!;
    const stuck = rejection(r.query(LEVENSHTEIN, ENDLESS));
    await new Promise((resolve) => setTimeout(resolve, 500));
    // What the kernel's OOM killer (or a crash) would do.
    process.kill(pid, 'SIGKILL');
    const err = await stuck;
    expect(err).toBeInstanceOf(QueryError);
    expect(err.message).toBe('the query process died (signal SIGKILL)');
    expect((await r.query('SELECT 42 AS answer'))?.rows).toEqual([{ answer: 42 }]);
    expect(r.pid).not.toBe(pid);
  });

  it('binds parameters as values: a quote in one is a character of it', async () => {
    const r = await reader();
    const attack = "x'; DROP TABLE readings; --";
    const result = await r.query(
      `SELECT $s AS s, $n + 1 AS n, $f * 2 AS f, $b AS b, $z IS NULL AS z, CAST($t AS TIMESTAMPTZ) AS t`,
      { s: attack, n: 41, f: 1.25, b: true, z: null, t: '2024-03-06T12:00:00Z' },
    );
    expect(result?.rows).toEqual([
      { s: attack, n: 42, f: 2.5, b: true, z: true, t: '2024-03-06 12:00:00+00' },
    ]);
    const matching = await r.query('SELECT count(*) AS n FROM readings WHERE source_key = $key', {
      key: "x' OR '1'='1",
    });
    expect(matching?.rows).toEqual([{ n: '0' }]);
    expect((await r.query('SELECT count(*) AS n FROM readings'))?.rows).toEqual([
      { n: String(fixture.counts.readings) },
    ]);
    const unknown = await rejection(r.query('SELECT $a AS a', { a: 1, nope: 2 }));
    expect(unknown).toBeInstanceOf(QueryError);
    expect(unknown.message).toBe('the query has no parameter $nope');
    const missing = await rejection(r.query('SELECT $a AS a'));
    expect(missing).toBeInstanceOf(QueryError);
    expect(missing.message).toMatch(
      /Values were not provided for the following prepared statement parameters: a/,
    );
  });

  it('still refuses writes, settings and files', async () => {
    const r = await reader();
    const readsOnly = /^only queries that read/;
    // Paths are refused before the statement's kind is looked at: external access is off.
    const noFiles = /^Permission Error: Cannot access file .* file system operations are disabled/;
    const out = join(root, 'out.csv');
    for (const [sql, refusal] of [
      ['CREATE TABLE x AS SELECT 1', readsOnly],
      ['DELETE FROM added.readings', readsOnly],
      ['EXPLAIN ANALYZE DELETE FROM added.readings', readsOnly],
      ['DETACH base', readsOnly],
      ['SET enable_external_access = true', readsOnly],
      [`COPY (SELECT 1) TO '${out}'`, noFiles],
      [`ATTACH '${join(root, 'other.duckdb')}' AS other`, readsOnly],
      [`SELECT * FROM read_csv('/etc/passwd')`, noFiles],
    ] as const) {
      const err = await rejection(r.query(sql));
      expect(err, sql).toBeInstanceOf(QueryError);
      expect(err.message, sql).toMatch(refusal);
    }
    expect(existsSync(out)).toBe(false);
    const twice = await rejection(r.query('SELECT 1; SELECT 2'));
    expect(twice.message).toBe('one statement at a time (got 2)');
    expect((await r.query('SELECT count(*) AS n FROM readings'))?.rows).toEqual([
      { n: String(fixture.counts.readings) },
    ]);
  });

  it('keeps the copies open while the delta is current, and moves to a new delta', async () => {
    const r = await reader();
    const before = await rejection(r.query('SELECT v FROM marker'));
    expect(before.message).toMatch(/Table with name marker does not exist/);
    const pid = r.pid!;
    // A query still running on the old delta when the new one arrives.
    const long = r.query(LEVENSHTEIN, { n: 30_000 });
    await new Promise((resolve) => setTimeout(resolve, 200));

    // The next batch's delta: the same, and a table of its own to tell it by.
    const next = join(root, 'next.duckdb');
    await copyFile(join(root, DELTA), next);
    const instance = await DuckDBInstance.create(next);
    const c = await instance.connect();
    await c.run('CREATE TABLE main.marker AS SELECT 1 AS v');
    await c.run('CHECKPOINT');
    c.closeSync();
    instance.closeSync();
    await put(DELTA, next);

    expect((await r.query('SELECT v FROM marker'))?.rows).toEqual([{ v: 1 }]);
    expect((await long)?.rows).toEqual([{ d: '30000' }]);
    expect(r.pid).toBe(pid);
    // The old delta's copy (replaced on disk) is closed once its last query ended.
    const deleted = readdirSync(`/proc/${pid}/fd`)
      .map((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          return '';
        }
      })
      .filter((target) => target.includes(DELTA) && target.endsWith('(deleted)'));
    expect(deleted).toEqual([]);
    // Put the fixture's delta back for the other tests' readers.
    await put(DELTA, join(root, DELTA));
  });

  it('ends its query process when the parent dies, and on close()', async () => {
    // A parent of its own (this worker must live on): it starts a query that runs for minutes,
    // prints its query process's pid, and is then killed with SIGKILL — no chance to clean up.
    const script = join(root, 'parent.mts');
    const modulePath = join(import.meta.dirname, '..', '..', 'functions', 'warehouse', 'query-sandbox.ts');
    await writeFile(
      script,
      `import { SandboxedReader } from ${JSON.stringify(modulePath)};
       const r = new SandboxedReader('warehouse', ${JSON.stringify(join(root, 'orphan'))});
       await r.query('SELECT 1');
       r.query(${JSON.stringify(LEVENSHTEIN)}, ${JSON.stringify(ENDLESS)}).catch(() => {});
       setTimeout(() => process.stdout.write(JSON.stringify({ pid: r.pid }) + '\\n'), 500);`,
    );
    const parent = spawn(process.execPath, ['--import', 'tsx', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: process.env,
    });
    const line = await new Promise<string>((resolve, reject) => {
      parent.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString()));
      parent.once('exit', (code) => reject(new Error(`the parent exited (${code}) before printing`)));
    });
    const { pid } = JSON.parse(line) as { pid: number };
    expect(running(pid)).toBe(true);
    parent.kill('SIGKILL');
    await waitFor(async () => !running(pid), 10_000, 'the orphaned query process to exit');

    const r = await reader();
    await r.query('SELECT 1');
    const mine = r.pid!;
    expect(running(mine)).toBe(true);
    await r.close();
    expect(running(mine)).toBe(false);
    expect(r.pid).toBeUndefined();
  });
});
