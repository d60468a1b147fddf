import { mkdir, mkdtemp, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, SetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { joinLines, jsonlReadings, wideCsv } from '../../local/demo-data.js';
import type { Target } from '../../local/target.js';
import { runCli } from '../helpers/cli.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

/**
 * The operator's commands on the embedded stack: `upload --wait`, `status`, `fetch` from another
 * process (the demo's secrets in the data folder), the dev banner's commands and `--no-demo`'s schedule.
 */
const ROOT = join(import.meta.dirname, '..', '..');
const PORTS = { S3_PORT: '34000', SQS_PORT: '34324', RUNTIME_PORT: '34300' };
/** The demo remotes of the fetch test, away from `npm start`'s 2222 and 8081. */
const REMOTE_PORTS = { sftp: 34222, http: 34081 };

let stack: TestStack;
let target: Target;
let work: string;
/** Two days ago (UTC): the keys' day, and timestamps well inside the plausible window. */
const day = new Date(Date.now() - 2 * 86_400_000);
const date = day.toISOString().slice(0, 10);
const dayPath = date.replaceAll('-', '/');

beforeAll(async () => {
  stack = await startTestStack({
    ...PORTS,
    // Runs once at start-up, then when a test says so (no grace): no timer re-emits behind the tests' back.
    RECONCILE_INTERVAL_SECONDS: '3600',
    RECONCILE_GRACE_SECONDS: '0',
  });
  const { resolveTarget } = await import('../../local/target.js');
  target = await resolveTarget();
  work = await mkdtemp(join(stack.data, 'cli-'));
});
afterAll(async () => {
  await stack?.stop();
});

/** The real CLI in a process of its own, with the stack's settings only. */
function cli(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000) {
  return runCli(args, { ...PORTS, PIPELINE_DATA: stack.data, ...env }, timeoutMs);
}

describe('upload', () => {
  it('--wait uploads a file and a folder under <factory>/<yyyy>/<mm>/<dd>/ and prints each file’s counts', async () => {
    const sensors = join(work, 'sensors-a.jsonl');
    await writeFile(
      sensors,
      joinLines(jsonlReadings({ seed: 7, lines: 300, start: day, stepMs: 60_000, badEvery: 100 })),
    );
    const folder = join(work, 'batch');
    await mkdir(join(folder, 'line-1'), { recursive: true });
    await writeFile(
      join(folder, 'line-1', 'line-1.csv'),
      joinLines(wideCsv({ seed: 8, lines: 40, start: day, stepMs: 60_000 })),
    );
    await writeFile(join(folder, '.DS_Store'), 'not a log');

    const run = await cli([
      'upload',
      sensors,
      folder,
      '--factory',
      'demo',
      '--date',
      date,
      '--wait',
      '--timeout',
      '90',
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);

    const sensorsKey = `demo/${dayPath}/sensors-a.jsonl`;
    const csvKey = `demo/${dayPath}/line-1/line-1.csv`;
    const raw = (await stack.list('raw')).map((o) => o.key);
    expect(raw).toEqual(expect.arrayContaining([sensorsKey, csvKey]));
    expect(raw.some((k) => k.endsWith('.DS_Store'))).toBe(false);

    const [jsonl] = await stack.queryWarehouse(
      `SELECT lines_total, lines_loaded, lines_rejected, rows_loaded FROM pipeline_files WHERE source_key = '${sensorsKey}'`,
    );
    expect(jsonl).toMatchObject({ lines_total: '300', lines_loaded: '297', lines_rejected: '3' });
    const [csv] = await stack.queryWarehouse(
      `SELECT lines_total, lines_loaded, lines_rejected, rows_loaded FROM pipeline_files WHERE source_key = '${csvKey}'`,
    );
    expect(run.stdout).toContain(`↑ s3://raw/${sensorsKey}`);
    expect(run.stdout).toMatch(/uploaded 2 file\(s\)/);
    expect(run.stdout).toContain(
      `✓ ${sensorsKey}  loaded — 300 lines: 297 loaded, 3 rejected; ${jsonl!.rows_loaded} rows in the warehouse`,
    );
    expect(run.stdout).toContain(
      `✓ ${csvKey}  loaded — ${csv!.lines_total} lines: ${csv!.lines_loaded} loaded, ${csv!.lines_rejected} rejected; ${csv!.rows_loaded} rows in the warehouse`,
    );
    expect(run.stdout).toContain('waited: 2 loaded, 0 quarantined, 0 not complete');
  });

  it('--wait fails for a file the ETL quarantines', async () => {
    const { runUpload } = await import('../../local/upload.js');
    const empty = join(work, 'empty.log');
    await writeFile(empty, '');
    const lines: string[] = [];
    const result = await runUpload([empty], target, {
      factory: 'demo',
      date,
      wait: true,
      timeoutSeconds: 60,
      write: (l) => lines.push(l),
      bar: false,
    });
    expect(result.exitCode).toBe(1);
    expect(result.waited?.[0]?.outcome).toBe('quarantined');
    expect(lines.join('\n')).toMatch(new RegExp(`✗ demo/${dayPath}/empty.log  quarantined: `));
  });

  it('refuses a factory that is not in the config, saying how it would be read', async () => {
    const { runUpload } = await import('../../local/upload.js');
    const file = join(work, 'sensors-a.jsonl');
    await expect(
      runUpload([file], target, { factory: 'nowhere', write: () => undefined, bar: false }),
    ).rejects.toThrow(
      /no factory "nowhere" in \/\S+; known: demo\. .*still processed — formats detected .*--new-factory/,
    );
    await expect(
      runUpload([file], target, { factory: 'Bad_Id', write: () => undefined, bar: false }),
    ).rejects.toThrow(/not a factory id/);
    const ok = await runUpload([file], target, {
      factory: 'nowhere',
      newFactory: true,
      date,
      write: () => undefined,
      bar: false,
    });
    expect(ok.files.map((f) => f.key)).toEqual([`nowhere/${dayPath}/sensors-a.jsonl`]);
    await stack.waitForManifest(ok.files[0]!.key);
    await stack.waitForWarehouse([ok.files[0]!.key]);
  });
});

describe('status', () => {
  /** A raw object whose notification SQS refused: the etl queue took no message over 1 KiB meanwhile. */
  let unnotified: string;
  beforeAll(async () => {
    const etl = target.queueUrls.etl;
    await stack.runtime.sqs.send(
      new SetQueueAttributesCommand({ QueueUrl: etl, Attributes: { MaximumMessageSize: '1024' } }),
    );
    try {
      unnotified = `demo/${dayPath}/unnotified-${'x'.repeat(600)}.jsonl`;
      await stack.runtime.s3.send(
        new PutObjectCommand({
          Bucket: 'raw',
          Key: unnotified,
          Body: joinLines(jsonlReadings({ seed: 9, lines: 10, start: day })),
        }),
      );
      // The router tried and was refused (it logs "notification could not be queued").
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      await stack.runtime.sqs.send(
        new SetQueueAttributesCommand({ QueueUrl: etl, Attributes: { MaximumMessageSize: '262144' } }),
      );
    }
    const depth = await stack.runtime.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: etl, AttributeNames: ['ApproximateNumberOfMessages'] }),
    );
    expect(depth.Attributes?.ApproximateNumberOfMessages).toBe('0');
  });

  it('reports files per stage, queues, the unprocessed raw object and its age, the reconciler and the warehouse', async () => {
    const { collectStatus, formatStatus } = await import('../../local/status.js');
    const s = await collectStatus(target);
    // sensors-a.jsonl, line-1.csv and nowhere's copy went through; empty.log was quarantined; one waits.
    expect(s.raw.objects).toBe(5);
    expect(s.stages.etl).toMatchObject({ done: 3, failed: 1, quarantined: 1, inFlight: 1 });
    expect(s.stages.enrich).toMatchObject({ done: 3, failed: 0, inFlight: 0 });
    expect(s.stages.warehouse).toMatchObject({ done: 3, failed: 0, inFlight: 0 });
    for (const q of [s.raw.queue, ...Object.values(s.stages).map((st) => st.queue)]) {
      expect(q).toMatchObject({ waiting: 0, inFlight: 0, dlq: 0 });
    }
    expect(s.raw.unprocessed).toBe(1);
    expect(s.raw.oldestUnprocessed).toMatchObject({ key: unnotified, reason: 'no-manifest', reemitted: 0 });
    expect(s.raw.oldestUnprocessed!.ageSeconds).toBeGreaterThanOrEqual(1.5);
    expect(s.reconciler.lastRun).not.toBeNull();
    expect(s.warehouse).toMatchObject({ files: { total: 4, complete: 3, quarantined: 1 } });
    expect(s.warehouse!.generation).toBeGreaterThanOrEqual(0);
    expect(s.warehouse!.bytes.total).toBeGreaterThan(0);
    expect(s.warehouse!.bytes.total).toBe(s.warehouse!.bytes.delta + s.warehouse!.bytes.base);

    const text = formatStatus(s);
    expect(text).toMatch(/│ etl\s+│\s+3 │ 1 \(1 quarantined\) │\s+1 │ etl: 0 waiting, 0 in flight\s+│\s+0 │/);
    expect(text).toContain(`Unprocessed raw objects: 1; oldest s3://raw/${unnotified}`);
    expect(text).toMatch(/Warehouse: generation \d+, [\d.]+ (KiB|MiB)/);

    const nowhere = await collectStatus(target, { factory: 'nowhere' });
    expect(nowhere.raw.objects).toBe(1);
    expect(nowhere.stages.warehouse.done).toBe(1);
    expect(nowhere.raw.unprocessed).toBe(0);
    expect(nowhere.warehouse?.files.total).toBe(1);
  });

  it('shows what the reconciler re-emitted; once processed, nothing is unprocessed (the real CLI, --json)', async () => {
    // Its own notification never came: a reconciler run finds it (grace 0 in this stack) and sends it.
    await stack.runtime.reconciler.runOnce();
    await stack.waitForWarehouse([unnotified]);
    const run = await cli(['status', '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const s = JSON.parse(run.stdout);
    expect(s.raw).toMatchObject({ objects: 5, unprocessed: 0, oldestUnprocessed: null });
    expect(s.stages.warehouse).toMatchObject({ done: 4, failed: 0, inFlight: 0 });
    expect(s.reconciler.lastRun).toMatchObject({ reemitted: { etl: 1 }, missing: { 'no-manifest': 1 } });
    expect(s.warehouse.files).toMatchObject({ total: 5, complete: 4, quarantined: 1 });
  });
});

describe('the demo secrets and fetch from another terminal', () => {
  it('`npm start` keeps them owner-only in the data folder; `fetch demo` in another process finds them', async () => {
    const { startDemoRemotes } = await import('../../local/demo-remotes.js');
    Object.assign(process.env, {
      DEMO_SFTP_PORT: String(REMOTE_PORTS.sftp),
      DEMO_HTTP_PORT: String(REMOTE_PORTS.http),
    });
    delete process.env.DEMO_SFTP_PASSWORD;
    delete process.env.DEMO_HTTP_TOKEN;
    const remotes = await startDemoRemotes(stack.data);
    try {
      const path = join(stack.data, 'demo-secrets.json');
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      const secrets = JSON.parse(await readFile(path, 'utf8'));
      expect(secrets).toEqual({
        DEMO_SFTP_PASSWORD: process.env.DEMO_SFTP_PASSWORD,
        DEMO_HTTP_TOKEN: process.env.DEMO_HTTP_TOKEN,
      });
      expect(secrets.DEMO_SFTP_PASSWORD).toMatch(/^[0-9a-f]{24}$/);

      // The demo factory's config, its sources on this test's ports.
      const config = (await readFile(join(ROOT, 'config', 'factories.yaml'), 'utf8'))
        .replace('port: 2222', `port: ${REMOTE_PORTS.sftp}`)
        .replace('127.0.0.1:8081', `127.0.0.1:${REMOTE_PORTS.http}`);
      const configPath = join(work, 'factories.yaml');
      await writeFile(configPath, config);

      const run = await cli(['fetch', 'demo', '--config', configPath]);
      expect(run.stderr).toBe('');
      expect(run.stdout).not.toMatch(/is not set/);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/↓ controller-press-02-\d{4}-\d{2}-\d{2}\.log .* fetched/);
      expect(run.stdout).toMatch(/↓ sensors-historian-\d{4}-\d{2}-\d{2}\.jsonl .* fetched/);
      expect(run.stdout).toMatch(/demo: 2 file\(s\) fetched .* from 2 of 2 source\(s\)/);

      // A long download reports its bytes as they come (what the CLI's progress bar shows).
      const outbox = join(stack.data, 'demo-remotes', 'sftp', 'outbox');
      const big = join(outbox, 'controller-press-03-big.log');
      await writeFile(big, 'x'.repeat(768 * 1024));
      const hourAgo = new Date(Date.now() - 3_600_000);
      await utimes(big, hourAgo, hourAgo);
      const { loadFactories } = await import('../../functions/contracts/factories.js');
      const { fetchSource } = await import('../../functions/fetch/fetch-source.js');
      const demo = loadFactories(configPath).factories.get('demo')!;
      const events: { kind: string; bytes?: number; total?: number }[] = [];
      await fetchSource(demo, demo.sources.find((x) => x.type === 'sftp')!, {
        rawBucket: 'raw',
        stateBucket: 'lake',
        tmpDir: stack.data,
        secret: (name) => secrets[name],
        deadline: Number.POSITIVE_INFINITY,
        progress: (e) => events.push(e),
      });
      const downloads = events.filter((e) => e.kind === 'download');
      expect(downloads[0]).toMatchObject({ bytes: 0, total: 768 * 1024 });
      expect(downloads.at(-1)).toMatchObject({ bytes: 768 * 1024, total: 768 * 1024 });
      const sizes = downloads.map((e) => e.bytes!);
      expect(sizes).toEqual([...sizes].sort((a, b) => a - b));
      expect(events.at(-1)).toMatchObject({ kind: 'file', bytes: 768 * 1024 });
    } finally {
      await remotes.close();
      delete process.env.DEMO_SFTP_PORT;
      delete process.env.DEMO_HTTP_PORT;
    }
  });

  it('a secrets file others can read is not used', async () => {
    const { loadDemoSecrets } = await import('../../local/demo-secrets.js');
    const dir = await mkdtemp(join(work, 'loose-'));
    await writeFile(join(dir, 'demo-secrets.json'), '{"DEMO_SFTP_PASSWORD":"x","PATH":"/evil"}', {
      mode: 0o644,
    });
    const env: NodeJS.ProcessEnv = {};
    expect(loadDemoSecrets(dir, env)).toMatch(/readable by others \(mode 644\): not used/);
    expect(env).toEqual({});
    const { chmod } = await import('node:fs/promises');
    await chmod(join(dir, 'demo-secrets.json'), 0o600);
    expect(loadDemoSecrets(dir, env)).toBeUndefined();
    // Only the demo's names: the file cannot set anything else.
    expect(env).toEqual({ DEMO_SFTP_PASSWORD: 'x' });
  });

  it('`fetch` with no stack up says so, instead of blaming the source', async () => {
    const run = await cli(['fetch', 'demo'], { S3_PORT: '34009', SQS_PORT: '34329' }, 60_000);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/cannot reach S3 at http:\/\/127\.0\.0\.1:34009 .*is `npm start` running\?/);
    expect(run.stdout).not.toMatch(/sftp|line3-controller/);
  });
});

describe('dev', () => {
  it('--no-demo schedules none of the demo factory’s sources', async () => {
    const { devRuntimeOptions } = await import('../../local/dev.js');
    const { scheduleDetail } = await import('../../local/runtime.js');
    const { scheduledEvent } = await import('../../local/scheduler.js');
    const { dueSources } = await import('../../functions/fetch/due-sources.js');
    const { loadFactories } = await import('../../functions/contracts/factories.js');
    // A minute when the demo's `*/5 * * * *` sources are due.
    const at = new Date('2026-01-15T10:05:00Z');
    expect(dueSources(loadFactories(join(ROOT, 'config')), at).map((m) => m.factory)).toEqual([
      'demo',
      'demo',
    ]);
    const event = scheduledEvent(at, 'schedule', scheduleDetail(devRuntimeOptions({ demo: false })));
    expect(await stack.runtime.invoke('schedule', event)).toEqual({ enqueued: 0 });
    expect(scheduleDetail(devRuntimeOptions({ demo: true }))).toEqual({ skipFactories: [] });
  });

  it('the banner’s commands carry the environment of a stack on other ports', async () => {
    const { banner, cliEnvPrefix } = await import('../../local/dev.js');
    const { localSettings } = await import('../../local/settings.js');
    const here = localSettings({ PIPELINE_DATA: join(process.cwd(), '.data') });
    expect(cliEnvPrefix(here, {})).toBe('');
    expect(banner(here, 'http://127.0.0.1:3000', true)).toContain('\n  npx telemetry-pipeline query "select');
    const moved = localSettings({ ...PORTS, PIPELINE_DATA: '/tmp/my data' });
    const text = banner(moved, 'http://127.0.0.1:34300', false);
    expect(text).toContain(
      `\n  S3_PORT=34000 SQS_PORT=34324 PIPELINE_DATA='/tmp/my data' npx telemetry-pipeline query "select`,
    );
    expect(text).toContain(
      `S3_PORT=34000 SQS_PORT=34324 PIPELINE_DATA='/tmp/my data' npx telemetry-pipeline status`,
    );
    expect(text).toContain('aws --endpoint-url http://127.0.0.1:34000');
    const keys = localSettings({ AWS_ACCESS_KEY_ID: 'me', AWS_SECRET_ACCESS_KEY: 'a-secret-of-mine' });
    expect(banner(keys, 'http://127.0.0.1:3000', false)).not.toContain('a-secret-of-mine');
  });
});
