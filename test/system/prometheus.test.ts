import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { joinLines, jsonlReadings, syslogLines } from '../../local/demo-data.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const PROMETHEUS = '/usr/bin/prometheus';
const PUSHGATEWAY = '/usr/bin/prometheus-pushgateway';
const PROM_PORT = 19090;
const PUSH_PORT = 19091;
let stack: TestStack;
const children: ChildProcess[] = [];

function start(bin: string, args: string[]) {
  const child = spawn(bin, args, { stdio: 'ignore' });
  children.push(child);
  return child;
}

/** One instant-vector value from Prometheus's HTTP API (0 when the series does not exist). */
async function promValue(query: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${PROM_PORT}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await res.json()) as { status: string; data: { result: { value: [number, string] }[] } };
  if (body.status !== 'success') throw new Error(`query failed: ${query}`);
  return body.data.result.reduce((sum, r) => sum + Number(r.value[1]), 0);
}

beforeAll(async () => {
  for (const bin of [PROMETHEUS, PUSHGATEWAY]) {
    if (!existsSync(bin))
      throw new Error(
        `${bin} not found: apt-get install prometheus prometheus-pushgateway (as .ci/run does)`,
      );
  }
  stack = await startTestStack();
  // The project's own scrape config, pointed at this test's runtime and Pushgateway, scraping every second.
  const config = parse(
    readFileSync(join(import.meta.dirname, '..', '..', 'local/monitoring/prometheus.yml'), 'utf8'),
  );
  config.global.scrape_interval = '1s';
  config.global.evaluation_interval = '1s';
  for (const job of config.scrape_configs) {
    job.static_configs = [
      {
        targets: [
          job.job_name === 'pushgateway' ? `127.0.0.1:${PUSH_PORT}` : new URL(stack.runtime.url).host,
        ],
      },
    ];
  }
  const dir = join(stack.data, 'prometheus');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'prometheus.yml'), stringify(config));
  // The project's alerting rules, beside the config that names them (`rule_files: [alerts.yml]`).
  await copyFile(
    join(import.meta.dirname, '..', '..', 'local/monitoring/alerts.yml'),
    join(dir, 'alerts.yml'),
  );
  // Debian's build persists pushes to /var/lib/prometheus/pushgateway.data by default: an earlier
  // run's series would come back. This one keeps its own, in the test's folder.
  start(PUSHGATEWAY, [
    `--web.listen-address=127.0.0.1:${PUSH_PORT}`,
    `--persistence.file=${join(dir, 'pushgateway.data')}`,
  ]);
  start(PROMETHEUS, [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${PROM_PORT}`,
  ]);
  await waitFor(
    async () => (await promValue('up{job="telemetry-pipeline"}')) === 1,
    30_000,
    'Prometheus scraping the runtime',
  );
  await waitFor(
    async () => (await promValue('up{job="pushgateway"}')) === 1,
    30_000,
    'Prometheus scraping the Pushgateway',
  );
});

afterAll(async () => {
  for (const c of children) c.kill('SIGTERM');
  await stack?.stop();
});

describe('a real Prometheus scraping the runtime', () => {
  it('shows the counters moved by exactly what went through the pipeline', async () => {
    const start = new Date('2024-07-01T00:00:00Z');
    const files = {
      'prom/2024/07/01/a.jsonl': joinLines(jsonlReadings({ seed: 1, lines: 300, start, badEvery: 100 })),
      'prom/2024/07/01/b.jsonl': joinLines(jsonlReadings({ seed: 2, lines: 200, start })),
      'prom/2024/07/01/c.syslog': joinLines(syslogLines({ seed: 3, lines: 150, start })),
    };
    for (const [key, body] of Object.entries(files)) await stack.put(key, body);
    await stack.waitForWarehouse(Object.keys(files));
    const expectations: [string, number][] = [
      ['telemetry_pipeline_files_total{stage="etl",factory="prom",outcome="loaded"}', 3],
      ['telemetry_pipeline_rows_total{stage="etl",factory="prom",table="readings"}', 497],
      ['telemetry_pipeline_rows_total{stage="etl",factory="prom",table="events"}', 150],
      ['telemetry_pipeline_rejected_rows_total{factory="prom"}', 3],
      ['telemetry_pipeline_rows_total{stage="enrich",factory="prom"}', 647],
      ['telemetry_pipeline_warehouse_rows_total{table="readings"}', 497],
      ['telemetry_pipeline_warehouse_rows_total{table="events"}', 150],
      ['telemetry_pipeline_queue_messages{queue="etl-dlq"}', 0],
    ];
    // One lag observation per enriched object loaded (a file spanning two dates has two).
    const [loaded] = await stack.queryWarehouse(
      "SELECT count(*) AS n FROM ledger WHERE kind IN ('readings', 'events') AND source_key LIKE 'prom/%'",
    );
    expectations.push(['telemetry_pipeline_end_to_end_lag_seconds_count', Number(loaded!.n)]);
    for (const [query, value] of expectations) {
      await waitFor(
        async () => (await promValue(query)) === value,
        20_000,
        `${query} == ${value} (is ${await promValue(query)})`,
      );
    }
    expect(
      await promValue('telemetry_pipeline_function_invocations_total{function="etl",outcome="ok"}'),
    ).toBeGreaterThanOrEqual(1);
    // etl, enrich and warehouse each had a cold start in this process.
    for (const fn of ['etl', 'enrich', 'warehouse']) {
      await waitFor(
        async () => (await promValue(`telemetry_pipeline_function_cold_starts_total{function="${fn}"}`)) >= 1,
        20_000,
        `a cold start of ${fn}`,
      );
    }
  });
});

describe('the alerting rules in a real Prometheus', () => {
  it('promtool accepts them; Prometheus loads and evaluates them, and a dead letter fires DeadLetters', async () => {
    const rules = join(import.meta.dirname, '..', '..', 'local/monitoring/alerts.yml');
    expect(execFileSync('/usr/bin/promtool', ['check', 'rules', rules], { encoding: 'utf8' })).toContain(
      'SUCCESS: 6 rules found',
    );
    type Rule = { name: string; health: string; lastEvaluation: string; state: string };
    const loaded = async () => {
      const res = await fetch(`http://127.0.0.1:${PROM_PORT}/api/v1/rules?type=alert`);
      const body = (await res.json()) as { data: { groups: { name: string; rules: Rule[] }[] } };
      return body.data.groups.flatMap((g) => g.rules);
    };
    // Loaded, and each evaluated without error (an evaluation has happened: not the zero time).
    await waitFor(
      async () => {
        const r = await loaded();
        return r.length === 6 && r.every((x) => x.health === 'ok' && !x.lastEvaluation.startsWith('0001'));
      },
      20_000,
      'six alerting rules loaded and evaluated',
    );
    expect((await loaded()).map((r) => r.name).sort()).toEqual([
      'DeadLetters',
      'FunctionErrors',
      ...Array(4).fill('QueueNotDraining'),
    ]);
    // A message in the etl DLQ: the runtime's gauge shows it, the rule fires.
    const { SendMessageCommand, ReceiveMessageCommand, DeleteMessageCommand } = await import(
      '@aws-sdk/client-sqs'
    );
    const dlq = process.env.DLQ_URL_ETL!;
    await stack.runtime.sqs.send(new SendMessageCommand({ QueueUrl: dlq, MessageBody: '{"alert":"test"}' }));
    type Alert = { labels: Record<string, string>; state: string };
    const alerts = async () => {
      const res = await fetch(`http://127.0.0.1:${PROM_PORT}/api/v1/alerts`);
      return ((await res.json()) as { data: { alerts: Alert[] } }).data.alerts;
    };
    await waitFor(
      async () =>
        (await alerts()).some(
          (a) => a.labels.alertname === 'DeadLetters' && a.labels.queue === 'etl-dlq' && a.state === 'firing',
        ),
      30_000,
      'DeadLetters firing for etl-dlq',
    );
    // Taken out again: the alert resolves.
    const got = await stack.runtime.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: dlq, WaitTimeSeconds: 1 }),
    );
    for (const m of got.Messages ?? []) {
      await stack.runtime.sqs.send(
        new DeleteMessageCommand({ QueueUrl: dlq, ReceiptHandle: m.ReceiptHandle! }),
      );
    }
    await waitFor(
      async () => !(await alerts()).some((a) => a.labels.alertname === 'DeadLetters'),
      30_000,
      'DeadLetters resolved',
    );
  });
});

describe('pushing to a real Pushgateway', () => {
  it('a function pushes its metrics at the end of an invocation, in one group per function (bounded)', async () => {
    process.env.PUSHGATEWAY_URL = `http://127.0.0.1:${PUSH_PORT}`;
    try {
      const res = await fetch(`${stack.runtime.url}/2015-03-31/functions/etl/invocations`, {
        method: 'POST',
        body: readFileSync(join(import.meta.dirname, '..', '..', 'events/sqs-s3-test-event.json')),
      });
      expect(res.status).toBe(200);
      const text = await (await fetch(`http://127.0.0.1:${PUSH_PORT}/metrics`)).text();
      const line = text
        .split('\n')
        .find(
          (l) =>
            l.startsWith('telemetry_pipeline_function_invocations_total{') &&
            l.includes('function="etl"') &&
            l.includes('outcome="ok"'),
        );
      expect(line).toMatch(/instance="etl",job="telemetry-pipeline"/);
      expect(Number(line!.split(' ').pop())).toBeGreaterThanOrEqual(1);
      // And Prometheus sees it through the Pushgateway job, labels kept.
      await waitFor(
        async () =>
          (await promValue(
            'telemetry_pipeline_function_invocations_total{job="telemetry-pipeline",function="etl",instance="etl"}',
          )) >= 1,
        20_000,
        'pushed series in Prometheus',
      );
    } finally {
      delete process.env.PUSHGATEWAY_URL;
    }
  });

  it('a failed push is logged and never fails the invocation', async () => {
    process.env.PUSHGATEWAY_URL = 'http://127.0.0.1:1';
    try {
      const res = await fetch(`${stack.runtime.url}/2015-03-31/functions/etl/invocations`, {
        method: 'POST',
        body: readFileSync(join(import.meta.dirname, '..', '..', 'events/sqs-s3-test-event.json')),
      });
      expect(res.headers.get('x-amz-function-error')).toBeNull();
      expect(await res.json()).toEqual({ batchItemFailures: [] });
    } finally {
      delete process.env.PUSHGATEWAY_URL;
    }
  });
});
