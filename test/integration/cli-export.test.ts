import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { joinLines, jsonlReadings } from '../../local/demo-data.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

/**
 * `telemetry-pipeline query` and `export` as an operator runs them — the real CLI in a process of its
 * own (bin/telemetry-pipeline.mjs on the Node 22 of node_modules/.bin) — against the embedded stack
 * holding 52,000+ readings: an export writes every row (not the query's 10,000) in each format, a
 * query that was cut says so, values reach a terminal escaped, and the statement check holds.
 */

const ROOT = join(import.meta.dirname, '..', '..');
const NODE = join(ROOT, 'node_modules', '.bin', 'node');
const CLI = join(ROOT, 'bin', 'telemetry-pipeline.mjs');

const start = new Date('2024-05-06T00:00:00Z');
const day = 'demo/2024/05/06';
const LINES_PER_FILE = 26_000;
/** A device name that would recolour a terminal and reverse the rest of its line. */
const HOSTILE_DEVICE = '\u001b[31mred\u202eevil';

let stack: TestStack;
/** The CLI's data folder (its query cache): its own, beside the stack's. */
let cliData: string;
let out: string;
let total: number;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [CLI, ...args], {
      cwd: ROOT,
      env: { ...process.env, PIPELINE_DATA: cliData, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs SQL with a DuckDB of the test's own (files read directly). */
async function duck(sql: string): Promise<Record<string, unknown>[]> {
  const instance = await DuckDBInstance.create(':memory:');
  const c = await instance.connect();
  try {
    return (await c.runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[];
  } finally {
    c.closeSync();
    instance.closeSync();
  }
}

const sq = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** What is compared between the warehouse and an export: rows, a sum of values, a hash of the keys. */
const FINGERPRINT = `count(*) AS n, sum(round(value * 1000)::BIGINT) AS v,
  bit_xor(hash(source_key || ':' || source_line::VARCHAR || ':' || device || ':' || metric)) AS h`;
const EXPORTED = 'SELECT ts, factory, device, metric, value, unit, source_key, source_line FROM readings';

beforeAll(async () => {
  stack = await startTestStack({ S3_PORT: '31000', SQS_PORT: '31324', RUNTIME_PORT: '31300' });
  cliData = join(stack.data, 'cli');
  out = await mkdtemp(join(stack.data, 'out-'));
  const hostile = [
    JSON.stringify({
      ts: start.toISOString(),
      device: HOSTILE_DEVICE,
      metric: 'temperature',
      value: 61.5,
      unit: 'C',
    }),
  ];
  const files = {
    [`${day}/sensors-a.jsonl`]: joinLines(jsonlReadings({ seed: 11, lines: LINES_PER_FILE, start })),
    [`${day}/sensors-b.jsonl`]: joinLines(
      jsonlReadings({ seed: 12, lines: LINES_PER_FILE, start: new Date(start.getTime() + 86_400_000 / 2) }),
    ),
    [`${day}/hostile.jsonl`]: joinLines(hostile),
  };
  for (const [key, body] of Object.entries(files)) await stack.put(key, body);
  await stack.waitForWarehouse(Object.keys(files), 180_000);
  const [row] = await stack.queryWarehouse('SELECT count(*) AS n FROM readings');
  total = Number(row!.n);
}, 240_000);

afterAll(async () => {
  await stack?.stop();
});

describe('telemetry-pipeline export', () => {
  it('holds the loaded readings (the fixture)', () => {
    expect(total).toBe(2 * LINES_PER_FILE + 1);
  });

  it.each([
    ['parquet', 'readings.parquet', (p: string) => `read_parquet(${sq(p)})`],
    ['csv', 'readings.csv', (p: string) => `read_csv(${sq(p)}, header = true)`],
    ['jsonl', 'readings.jsonl', (p: string) => `read_json(${sq(p)}, format = 'newline_delimited')`],
  ])('writes every row to %s, the same rows as the warehouse holds', async (format, name, from) => {
    const path = join(out, name);
    const run = await cli(['export', EXPORTED, '--output', path]);
    expect(run.stderr).toContain(`exported ${total.toLocaleString('en-US')} rows`);
    expect(run.stderr).toContain(format);
    expect(run.code).toBe(0);
    // No progress bar without a terminal: the summary is the one line.
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stdout).toBe('');

    const [expected] = await stack.queryWarehouse(`SELECT ${FINGERPRINT} FROM (${EXPORTED})`);
    const [written] = await duck(`SELECT ${FINGERPRINT} FROM ${from(path)}`);
    expect(Number(written!.n)).toBe(total);
    expect(written).toEqual(expected);
    // Only the file: the partial file it was written as is gone.
    expect(readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('writes compressed CSV and takes --format over the name', async () => {
    const gz = join(out, 'readings.csv.gz');
    const run = await cli(['export', `${EXPORTED} WHERE metric = 'pressure'`, '-o', gz]);
    expect(run.code).toBe(0);
    const [expected] = await stack.queryWarehouse(
      `SELECT ${FINGERPRINT} FROM (${EXPORTED} WHERE metric = 'pressure')`,
    );
    expect((await duck(`SELECT ${FINGERPRINT} FROM read_csv(${sq(gz)})`))[0]).toEqual(expected);
    expect(readFileSync(gz).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));

    const data = join(out, 'readings.data');
    expect((await cli(['export', 'SELECT 1 AS one', '-o', data])).stderr).toContain('pass --format');
    expect((await cli(['export', 'SELECT 1 AS one', '-o', data, '--format', 'parquet'])).code).toBe(0);
    expect(await duck(`SELECT one FROM read_parquet(${sq(data)})`)).toEqual([{ one: 1 }]);
  });

  it('does not replace a file without --force', async () => {
    const path = join(out, 'kept.csv');
    await writeFile(path, 'mine\n');
    const run = await cli(['export', 'SELECT 1 AS one', '-o', path]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('pass --force');
    expect(readFileSync(path, 'utf8')).toBe('mine\n');
    expect((await cli(['export', 'SELECT 1 AS one', '-o', path, '--force'])).code).toBe(0);
    expect(readFileSync(path, 'utf8')).toBe('one\n1\n');
  });

  it('refuses SQL that writes, attaches or reads files, and leaves no file', async () => {
    const evil = join(out, 'evil.csv');
    const path = join(out, 'refused.csv');
    const attempts = [
      // Refused as it is bound (no file but the export's may be written), or else as not a SELECT.
      [`COPY readings TO ${sq(evil)} (FORMAT csv)`, /Permission Error|only queries that read/],
      [`ATTACH ${sq(join(out, 'new.duckdb'))} AS x`, /only queries that read/],
      // Closing the COPY it is put in, to aim it elsewhere: not one SELECT by itself.
      [`SELECT 1) TO ${sq(evil)} (FORMAT csv); --`, /Parser Error|syntax error/],
      [`SELECT 1; COPY readings TO ${sq(evil)}`, /one statement at a time/],
      [`SELECT * FROM read_csv('/etc/passwd')`, /Permission Error|disabled by configuration/],
      [`SELECT * FROM read_csv(${sq(evil)})`, /Permission Error|disabled by configuration|No files found/],
    ] as const;
    for (const [sql, error] of attempts) {
      const run = await cli(['export', sql, '-o', path]);
      expect(run.code, sql).toBe(1);
      expect(run.stderr, sql).toMatch(error);
    }
    expect(existsSync(evil)).toBe(false);
    expect(existsSync(path)).toBe(false);
    expect(existsSync(join(out, 'new.duckdb'))).toBe(false);
    expect(readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('refuses an output path it cannot quote safely', async () => {
    const run = await cli(['export', 'SELECT 1', '-o', join(out, 'bad\nname.csv')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('control characters');
    // A quote is quoted.
    const quoted = join(out, "it's.csv");
    expect((await cli(['export', 'SELECT 1 AS one', '-o', quoted])).code).toBe(0);
    expect(readFileSync(quoted, 'utf8')).toBe('one\n1\n');
  });

  it('stops at its time limit, and leaves no file', async () => {
    const path = join(out, 'slow.csv');
    // One call that runs for minutes and never sees the interrupt: the query process is killed.
    const sql = `SELECT levenshtein(repeat('a', 300000), repeat('b', 300000)) AS d`;
    const started = Date.now();
    const run = await cli(['export', sql, '-o', path, '--timeout', '2']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('stopped after 2 s');
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(existsSync(path)).toBe(false);
    expect(readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([]);
  });
});

describe('telemetry-pipeline query', () => {
  it('warns when the rows were cut at 10,000, and exits 1 with --strict', async () => {
    const run = await cli(['query', 'SELECT device, value FROM readings', '--csv']);
    expect(run.code).toBe(0);
    expect(run.stdout.trimEnd().split('\r\n')).toHaveLength(1 + 10_000);
    expect(run.stderr).toContain('first 10,000 rows of more');
    expect(run.stderr).toContain('telemetry-pipeline export');

    const strict = await cli(['query', 'SELECT device, value FROM readings', '--csv', '--strict']);
    expect(strict.code).toBe(1);
    expect(strict.stderr).toContain('first 10,000 rows of more');

    const whole = await cli(['query', 'SELECT count(*) AS n FROM readings', '--strict']);
    expect(whole.code).toBe(0);
    expect(whole.stderr).toBe('');
  });

  it('prints numbers as JSON numbers where exact, as strings beyond', async () => {
    const run = await cli([
      'query',
      `SELECT count(*) AS n, 9007199254740991::BIGINT AS max_safe, 9007199254740993::BIGINT AS big,
         (-5)::HUGEINT AS huge, 12.50::DECIMAL(10, 2) AS d, 12345678901234567.89::DECIMAL(19, 2) AS wide,
         [1, 2]::BIGINT[] AS list, avg(value) > 0 AS ok, NULL::BIGINT AS missing
       FROM readings`,
      '--json',
    ]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual([
      {
        n: total,
        max_safe: 9007199254740991,
        big: '9007199254740993',
        huge: -5,
        d: 12.5,
        wide: '12345678901234567.89',
        list: [1, 2],
        ok: true,
        missing: null,
      },
    ]);
  });

  it('escapes control characters in table output; CSV and JSON keep the value', async () => {
    const sql = `SELECT device AS "dev\u001b[0m", value FROM readings WHERE device LIKE '%red%evil'`;
    const table = await cli(['query', sql]);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain('\\x1b[31mred\\u202eevil');
    expect(table.stdout).toContain('dev\\x1b[0m');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: what must not reach the terminal
    expect(table.stdout).not.toMatch(/[\u001b\u202e]/);
    expect(table.stdout).toContain('(1 row)');

    const csv = await cli(['query', sql, '--csv']);
    expect(csv.stdout.split('\r\n')[1]).toBe(`${HOSTILE_DEVICE},61.5`);
    const json = await cli(['query', sql, '--json']);
    expect(JSON.parse(json.stdout)[0]['dev\u001b[0m']).toBe(HOSTILE_DEVICE);
  });

  it('says what DuckDB refused, and refuses writes', async () => {
    const run = await cli(['query', `COPY readings TO ${sq(join(out, 'q.csv'))}`]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/Permission Error|only queries that read/);
    expect(existsSync(join(out, 'q.csv'))).toBe(false);
    const detach = await cli(['query', 'DETACH base']);
    expect(detach.code).toBe(1);
    expect(detach.stderr).toMatch(/only queries that read/);
  });
});

describe('telemetry-pipeline --version', () => {
  it("prints the package's version and Node's", async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const run = await cli(['--version']);
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe(`telemetry-pipeline ${pkg.version} (Node ${process.version})`);
  });
});

describe('targets', () => {
  it('tells what to do when the local stack is not there', async () => {
    const run = await new Promise<Run>((resolve) => {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        PIPELINE_DATA: cliData,
        S3_PORT: '31999',
        SQS_PORT: '31998',
      };
      delete env.S3_ENDPOINT;
      delete env.SQS_ENDPOINT;
      const child = spawn(NODE, [CLI, 'query', 'SELECT 1'], {
        cwd: ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      child.once('close', (code) => resolve({ code, stdout: '', stderr }));
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('is `npm start` running?');
  });

  it('names what to deploy for a stage with no outputs', async () => {
    const run = await cli(['--stage', 'nosuchstage', 'export', 'SELECT 1', '-o', join(out, 'stage.csv')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/outputs\.json|deploy/);
  });
});

// The CLI's cache for the local stack is where the docs say it is.
it('caches the local copies under the data folder', () => {
  expect(existsSync(join(cliData, 'query-cache'))).toBe(true);
});
