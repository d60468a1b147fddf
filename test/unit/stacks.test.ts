import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadFactories, secretNames } from '../../functions/contracts/factories.js';
import { hiveType, LAKE_TABLES } from '../../functions/contracts/lake-tables.js';
import { columnsAt } from '../../functions/contracts/tables.js';
import {
  dlqResourceName,
  type FunctionName,
  type FunctionSpec,
  linkName,
  type QueueName,
  topology,
} from '../../topology/topology.js';

/**
 * The contract between the topology and the SST stacks: run `stacks/pipeline.ts` against recording
 * fakes of SST's globals and compare what it declares with what the topology (which the local runtime
 * runs) says. A queue's batch size or a filter changed in one place shows up in both.
 */
interface Recorded {
  buckets: string[];
  lifecycle: Record<string, { id: string; prefix?: string; expiresIn: string }[]>;
  queues: Record<
    string,
    { fifo?: boolean; visibilityTimeout?: string; dlq?: { queue: string; retry: number } }
  >;
  notify: Record<
    string,
    { name: string; queue: string; events: string[]; filterPrefix?: string; filterSuffix?: string }[][]
  >;
  subscribers: Record<string, { fn: Record<string, unknown>; args: { batch: Record<string, unknown> } }[]>;
  crons: Record<string, { schedule: string; function: Record<string, unknown> }>;
  functions: Record<string, Record<string, unknown>>;
  secrets: string[];
  alarms: Record<string, Record<string, unknown>>;
  alarmSubscriptions: { topic: string; protocol: string; endpoint: string }[];
  glueDatabases: Record<string, { name: string }>;
  glueTables: Record<string, GlueTable>;
}

interface GlueTable {
  databaseName: string;
  name: string;
  tableType: string;
  parameters: Record<string, string>;
  partitionKeys: { name: string; type: string }[];
  storageDescriptor: {
    location: string;
    serDeInfo: { serializationLibrary: string };
    columns: { name: string; type: string }[];
  };
}

let rec: Recorded;

function installFakes() {
  rec = {
    buckets: [],
    lifecycle: {},
    queues: {},
    notify: {},
    subscribers: {},
    crons: {},
    functions: {},
    secrets: [],
    alarms: {},
    alarmSubscriptions: [],
    glueDatabases: {},
    glueTables: {},
  };
  /** A deployed function's name, as SST's `nodes.function` gives it (an Output, here applied at once). */
  const deployedFunction = (id: string) => ({
    apply: (f: (fn: { name: string }) => unknown) => f({ name: `fn:${id}` }),
  });
  class Bucket {
    name: string;
    constructor(
      readonly id: string,
      args: { lifecycle?: Recorded['lifecycle'][string] } = {},
    ) {
      this.name = `bucket:${id}`;
      rec.buckets.push(id);
      rec.lifecycle[id] = args.lifecycle ?? [];
    }
    notify(args: { notifications: { queue: { id: string } }[] }) {
      rec.notify[this.id] ??= [];
      rec.notify[this.id]!.push(args.notifications.map((n) => ({ ...n, queue: n.queue.id })) as never);
    }
  }
  class Queue {
    arn: string;
    url: string;
    constructor(
      readonly id: string,
      args: Recorded['queues'][string],
    ) {
      this.arn = `arn:queue:${id}`;
      this.url = `https://sqs.example/${id}`;
      rec.queues[id] = args;
    }
    get nodes() {
      return { queue: { name: `sqs:${this.id}` } };
    }
    subscribe(fn: Record<string, unknown>, args: { batch: Record<string, unknown> }) {
      rec.subscribers[this.id] ??= [];
      rec.subscribers[this.id]!.push({ fn, args });
      return { nodes: { function: deployedFunction(String(fn.handler)) } };
    }
  }
  class CronV2 {
    nodes: { function: ReturnType<typeof deployedFunction> };
    constructor(id: string, args: Recorded['crons'][string]) {
      rec.crons[id] = args;
      this.nodes = { function: deployedFunction(String(args.function.handler)) };
    }
  }
  class FunctionFake {
    url = 'https://fn.example/';
    name: string;
    constructor(id: string, args: Record<string, unknown>) {
      rec.functions[id] = args;
      this.name = `fn:${String(args.handler)}`;
    }
  }
  class SnsTopic {
    arn: string;
    constructor(readonly id: string) {
      this.arn = `arn:sns:${id}`;
    }
  }
  class MetricAlarm {
    constructor(id: string, args: Record<string, unknown>) {
      rec.alarms[id] = args;
    }
  }
  class CatalogDatabase {
    name: string;
    constructor(id: string, args: { name: string }) {
      rec.glueDatabases[id] = args;
      this.name = `glue:${args.name}`;
    }
  }
  class CatalogTable {
    constructor(id: string, args: GlueTable) {
      rec.glueTables[id] = args;
    }
  }
  class TopicSubscription {
    constructor(_id: string, args: Recorded['alarmSubscriptions'][number]) {
      rec.alarmSubscriptions.push(args);
    }
  }
  class Secret {
    constructor(readonly id: string) {
      rec.secrets.push(id);
    }
  }
  Object.assign(globalThis, {
    sst: { aws: { Bucket, Queue, CronV2, Function: FunctionFake, SnsTopic }, Secret },
    $app: { stage: 'test' },
    aws: {
      getRegionOutput: () => ({ name: 'us-test-1' }),
      cloudwatch: { MetricAlarm },
      sns: { TopicSubscription },
      glue: { CatalogDatabase, CatalogTable },
    },
    // SST's template tag for Outputs; the fakes' values are plain strings.
    $interpolate: (parts: TemplateStringsArray, ...values: unknown[]) =>
      parts.reduce((out, part, i) => out + part + (i < values.length ? String(values[i]) : ''), ''),
  });
}

async function runStacks() {
  installFakes();
  // A computed path keeps the main tsconfig from type-checking stacks/ without SST's globals;
  // `npm run typecheck` checks it against SST's real types (tsconfig.sst.json).
  const path = ['..', '..', 'stacks', 'pipeline.ts'].join('/');
  const { pipeline } = (await import(/* @vite-ignore */ path)) as { pipeline: () => unknown };
  return pipeline();
}

/** The function arguments the stacks declared for a topology function, whatever its trigger. */
function declared(name: FunctionName, spec: FunctionSpec): Record<string, unknown> {
  const t = spec.trigger;
  if ('url' in t) return rec.functions[linkName('bucket', name)]!;
  if ('schedule' in t) return rec.crons[linkName('bucket', name)]!.function;
  return rec.subscribers[linkName('queue', t.queue)]!.find(
    (s) => s.fn.handler === `functions/${spec.handler}.handler`,
  )!.fn;
}

const linkedIds = (fn: Record<string, unknown>) => (fn.link as { id: string }[]).map((l) => l.id).sort();
const functions = Object.entries(topology.functions) as [FunctionName, FunctionSpec][];

/** Buckets and queues a function's code uses: `buckets.X` / `queueUrls.X` in its handler's import graph. */
function usedResources(handler: string): { buckets: Set<string>; queues: Set<string> } {
  const root = resolve(import.meta.dirname, '..', '..', 'functions');
  const seen = new Set<string>();
  const out = { buckets: new Set<string>(), queues: new Set<string>() };
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/buckets\.(raw|lake|warehouse)\b/g)) out.buckets.add(m[1]!);
    for (const m of text.matchAll(/queueUrls\.(fetch|etl|enrich|warehouse)\b/g)) out.queues.add(m[1]!);
    for (const m of text.matchAll(/from '(\.[^']+)\.js'/g)) visit(resolve(dirname(file), `${m[1]}.ts`));
  };
  visit(join(root, `${handler}.ts`));
  return out;
}

describe('SST stacks = topology', () => {
  beforeEach(runStacks);
  afterEach(() => {
    for (const name of ['sst', '$app', 'aws', '$interpolate']) Reflect.deleteProperty(globalThis, name);
  });

  it('declares exactly the topology buckets', () => {
    expect(rec.buckets.sort()).toEqual(topology.buckets.map((b) => linkName('bucket', b)).sort());
  });

  it('gives each bucket the topology retention as S3 lifecycle rules: prefix and days', () => {
    for (const bucket of topology.buckets) {
      const rules = rec.lifecycle[linkName('bucket', bucket)]!;
      expect(rules.map((r) => [r.prefix ?? '', r.expiresIn]).sort()).toEqual(
        topology.retention
          .filter((r) => r.bucket === bucket)
          .map((r) => [r.prefix, `${r.days} days`])
          .sort(),
      );
      // S3 wants lifecycle rule ids unique within a bucket.
      expect(new Set(rules.map((r) => r.id)).size).toBe(rules.length);
    }
    expect(rec.lifecycle[linkName('bucket', 'raw')]).toEqual([{ id: 'expire-all', expiresIn: '30 days' }]);
  });

  it('RETENTION_DAYS overrides the retention of a stage, and refuses what it cannot read', async () => {
    process.env.RETENTION_DAYS = 'raw/=7, lake/quarantine/=0, lake/enriched/=0';
    try {
      await runStacks();
      expect(rec.lifecycle[linkName('bucket', 'raw')]).toEqual([{ id: 'expire-all', expiresIn: '7 days' }]);
      const lake = rec.lifecycle[linkName('bucket', 'lake')]!.map((r) => [r.prefix, r.expiresIn]);
      expect(lake.map(([p]) => p).sort()).toEqual(['failures/', 'normalized/']);
      // Only the topology's rules: none that could expire the warehouse's base, the manifests or state.
      for (const [entry, error] of [
        ['quarantine=5', '"quarantine=5" is not <bucket>/<prefix>=<days> for one of raw/, lake/quarantine/'],
        ['lake/tmp/=1', '"lake/tmp/=1" is not'],
        ['warehouse/=30', '"warehouse/=30" is not'],
        ['lake/=365', '"lake/=365" is not'],
        [
          'lake/enriched/=30',
          'lake/enriched/ (30 days) must be kept at least as long as lake/normalized/ (730)',
        ],
      ]) {
        process.env.RETENTION_DAYS = entry;
        await expect(runStacks(), entry).rejects.toThrow(error);
      }
    } finally {
      delete process.env.RETENTION_DAYS;
    }
  });

  it('alarms to the Alarms topic on every DLQ, every queue’s oldest message, and every function’s errors and throttles', () => {
    const expected: Record<string, Record<string, unknown>> = {};
    for (const [name, seconds] of Object.entries(topology.alarms.oldestMessageSeconds)) {
      expected[`${linkName('dlq', name)}NotEmpty`] = {
        namespace: 'AWS/SQS',
        metricName: 'ApproximateNumberOfMessagesVisible',
        dimensions: { QueueName: `sqs:${linkName('dlq', name)}` },
        threshold: 0,
      };
      expected[`${linkName('queue', name)}Stuck`] = {
        namespace: 'AWS/SQS',
        metricName: 'ApproximateAgeOfOldestMessage',
        dimensions: { QueueName: `sqs:${linkName('queue', name)}` },
        threshold: seconds,
      };
    }
    for (const [name, spec] of functions) {
      for (const metricName of ['Errors', 'Throttles']) {
        expected[`${linkName('bucket', name)}${metricName}`] = {
          namespace: 'AWS/Lambda',
          metricName,
          dimensions: { FunctionName: `fn:functions/${spec.handler}.handler` },
          threshold: 0,
        };
      }
    }
    expect(Object.keys(rec.alarms).sort()).toEqual(Object.keys(expected).sort());
    for (const [id, alarm] of Object.entries(rec.alarms)) {
      expect(alarm, id).toMatchObject({
        ...expected[id],
        comparisonOperator: 'GreaterThanThreshold',
        alarmActions: ['arn:sns:Alarms'],
        okActions: ['arn:sns:Alarms'],
      });
    }
    // Every queue of the topology has its oldest-message threshold.
    expect(Object.keys(topology.alarms.oldestMessageSeconds).sort()).toEqual(
      Object.keys(topology.queues).sort(),
    );
    expect(rec.alarmSubscriptions).toEqual([]);
  });

  it('subscribes the addresses in ALARM_EMAILS to the alarms, by mail', async () => {
    process.env.ALARM_EMAILS = 'ops@plant.example, data@plant.example';
    try {
      await runStacks();
      expect(rec.alarmSubscriptions).toEqual([
        { topic: 'arn:sns:Alarms', protocol: 'email', endpoint: 'ops@plant.example' },
        { topic: 'arn:sns:Alarms', protocol: 'email', endpoint: 'data@plant.example' },
      ]);
    } finally {
      delete process.env.ALARM_EMAILS;
    }
  });

  it('tells every function its stage: its metrics go to the stage’s own CloudWatch namespace', () => {
    for (const [name, spec] of functions) {
      expect((declared(name, spec).environment as Record<string, string>).PIPELINE_STAGE, name).toBe('test');
    }
  });

  it('gives WAREHOUSE_RETENTION_DAYS to the writer and the reconciler, and to no other function', async () => {
    const holders = () =>
      functions
        .filter(([name, spec]) => 'WAREHOUSE_RETENTION_DAYS' in (declared(name, spec).environment as object))
        .map(([name, spec]) => [
          name,
          (declared(name, spec).environment as Record<string, string>).WAREHOUSE_RETENTION_DAYS,
        ]);
    expect(holders()).toEqual([]);
    process.env.WAREHOUSE_RETENTION_DAYS = '90';
    try {
      await runStacks();
      expect(holders().sort()).toEqual([
        ['reconcile', '90'],
        ['warehouse', '90'],
      ]);
      // A value the writer would refuse at start-up fails the deploy instead.
      for (const bad of ['0', '7.5', 'ninety']) {
        process.env.WAREHOUSE_RETENTION_DAYS = bad;
        await expect(runStacks(), bad).rejects.toThrow(
          `WAREHOUSE_RETENTION_DAYS: "${bad}" is not a number of days`,
        );
      }
    } finally {
      delete process.env.WAREHOUSE_RETENTION_DAYS;
    }
  });

  it('declares the lake for Athena: a Glue table per lake table, columns as declared, partitions projected', () => {
    expect(Object.values(rec.glueDatabases)).toEqual([
      { name: 'telemetry_pipeline_test', description: expect.any(String) },
    ]);
    const tables = Object.values(rec.glueTables);
    expect(tables.map((t) => t.name).sort()).toEqual(LAKE_TABLES.map((t) => t.name).sort());
    const factories = [...loadFactories(join(import.meta.dirname, '..', '..', 'config')).factories.keys()];
    for (const table of tables) {
      const lake = LAKE_TABLES.find((t) => t.name === table.name)!;
      expect(table.databaseName).toBe('glue:telemetry_pipeline_test');
      expect(table.storageDescriptor.location).toBe(`s3://bucket:Lake/${lake.prefix}`);
      expect(table.partitionKeys.map((k) => k.name)).toEqual(lake.partitions);
      expect(table.parameters).toMatchObject({
        'projection.enabled': 'true',
        'projection.factory.type': 'enum',
        'projection.factory.values': [...factories, 'unassigned'].join(','),
        'storage.location.template': `s3://bucket:Lake/${lake.prefix}${lake.partitions.map((p) => `${p}=\${${p}}`).join('/')}/`,
      });
      if (lake.partitions.includes('month')) {
        expect(table.parameters).toMatchObject({
          'projection.month.type': 'date',
          'projection.month.format': 'yyyy-MM',
          'projection.month.range': '2020-01,NOW',
          'projection.month.interval.unit': 'MONTHS',
        });
      }
    }
    // The Parquet tables' columns are the canonical declaration at the stage that writes them (less the
    // partition column `factory`), with Hive's names for DuckDB's types.
    const columns = (name: string) =>
      tables.find((t) => t.name === name)!.storageDescriptor.columns.map((c) => `${c.name} ${c.type}`);
    const declaredAt = (table: 'readings' | 'events' | 'rejects', stage: 'normalized' | 'enriched') =>
      columnsAt(table, stage)
        .filter((c) => c.name !== 'factory')
        .map((c) => `${c.name} ${hiveType(c.type)}`);
    expect(columns('readings')).toEqual(declaredAt('readings', 'enriched'));
    expect(columns('events')).toEqual(declaredAt('events', 'enriched'));
    expect(columns('normalized_readings')).toEqual(declaredAt('readings', 'normalized'));
    expect(columns('normalized_events')).toEqual(declaredAt('events', 'normalized'));
    expect(columns('rejects')).toEqual(declaredAt('rejects', 'normalized'));
    expect(columns('readings')).toContain('ts timestamp');
    expect(columns('readings')).toContain('is_anomaly boolean');
    // Manifests are pretty-printed JSON, a record across lines: the Ion SerDe reads that, OpenX's does not.
    expect(tables.find((t) => t.name === 'manifests')!.storageDescriptor.serDeInfo.serializationLibrary).toBe(
      'com.amazon.ionhiveserde.IonHiveSerDe',
    );
  });

  it('caps each function at its topology concurrency: standard-queue subscribers by their poller, the rest by reservation', () => {
    const capped: Record<string, unknown> = {};
    for (const [name, spec] of functions) {
      const t = spec.trigger;
      if ('queue' in t && !topology.queues[t.queue].fifo) {
        // Reserved concurrency would have the poller's surplus batches throttled into the DLQ.
        expect(declared(name, spec).concurrency, name).toBeUndefined();
        const sub = rec.subscribers[linkName('queue', t.queue)]!.find(
          (x) => x.fn.handler === `functions/${spec.handler}.handler`,
        )!;
        capped[name] = (
          sub.args as { transform?: { eventSourceMapping?: unknown } }
        ).transform?.eventSourceMapping;
      } else {
        capped[name] = declared(name, spec).concurrency;
      }
    }
    expect(capped).toEqual({
      schedule: { reserved: 1 },
      fetch: { scalingConfig: { maximumConcurrency: 2 } },
      etl: { scalingConfig: { maximumConcurrency: 20 } },
      enrich: { scalingConfig: { maximumConcurrency: 10 } },
      warehouse: { reserved: 1 },
      reconcile: { reserved: 1 },
      api: { reserved: 10 },
    });
    for (const [name, spec] of functions) {
      expect(capped[name], name).toEqual(
        'reserved' in (capped[name] as object)
          ? { reserved: spec.maxConcurrency }
          : { scalingConfig: { maximumConcurrency: spec.maxConcurrency } },
      );
    }
  });

  it('alarms on a queue’s oldest message only past its visibility timeout: one retry pages no one', () => {
    for (const [name, seconds] of Object.entries(topology.alarms.oldestMessageSeconds)) {
      expect(seconds, name).toBeGreaterThan(topology.queues[name as QueueName].visibilityTimeoutSeconds);
    }
  });

  it('declares every queue with its DLQ, FIFO-ness, visibility timeout and maxReceiveCount', () => {
    const expected = Object.entries(topology.queues).flatMap(([name]) => [
      linkName('queue', name),
      linkName('dlq', name),
    ]);
    expect(Object.keys(rec.queues).sort()).toEqual(expected.sort());
    for (const [name, spec] of Object.entries(topology.queues) as [
      QueueName,
      (typeof topology.queues)[QueueName],
    ][]) {
      expect(rec.queues[linkName('queue', name)]).toEqual({
        fifo: spec.fifo,
        visibilityTimeout: `${spec.visibilityTimeoutSeconds} seconds`,
        dlq: { queue: `arn:queue:${linkName('dlq', name)}`, retry: spec.maxReceiveCount },
      });
      expect(rec.queues[linkName('dlq', name)]).toEqual({ fifo: spec.fifo });
      expect(dlqResourceName(name).endsWith('.fifo')).toBe(spec.fifo);
    }
  });

  it('calls notify once per bucket, with the topology routes, events and filters', () => {
    for (const bucket of topology.buckets) {
      const routes = topology.notifications.filter((n) => n.bucket === bucket);
      const calls = rec.notify[linkName('bucket', bucket)] ?? [];
      expect(calls).toHaveLength(routes.length > 0 ? 1 : 0);
      if (routes.length === 0) continue;
      expect(
        calls[0]!.map(({ queue, events, filterPrefix, filterSuffix }) => ({
          queue,
          events,
          filterPrefix,
          filterSuffix,
        })),
      ).toEqual(
        routes.map((r) => ({
          queue: linkName('queue', r.queue),
          events: [...r.events],
          filterPrefix: (r.filter as { prefix?: string }).prefix,
          filterSuffix: (r.filter as { suffix?: string }).suffix,
        })),
      );
    }
  });

  it.each(functions)(
    'function %s: trigger, batching, size, runtime and packaging as in the topology',
    (name, spec) => {
      const fn = declared(name, spec);
      expect(fn).toMatchObject({
        handler: `functions/${spec.handler}.handler`,
        memory: `${spec.memoryMB} MB`,
        timeout: `${spec.timeoutSeconds} seconds`,
        storage: `${spec.storageMB} MB`,
        nodejs: { install: expect.arrayContaining(['@duckdb/node-api']) },
      });
      expect(Number(/^nodejs(\d+)\.x$/.exec(String(fn.runtime))?.[1])).toBeGreaterThanOrEqual(22);
      if ('url' in spec.trigger) {
        expect(fn.url).toBe(true);
      } else if ('schedule' in spec.trigger) {
        expect(rec.crons[linkName('bucket', name)]!.schedule).toBe(spec.trigger.schedule);
      } else {
        const sub = rec.subscribers[linkName('queue', spec.trigger.queue)]!.find((s) => s.fn === fn)!;
        expect(sub.args.batch).toEqual({
          size: spec.trigger.batchSize,
          ...(spec.trigger.batchWindowSeconds > 0
            ? { window: `${spec.trigger.batchWindowSeconds} seconds` }
            : {}),
          partialResponses: true,
        });
        // AWS: a queue's visibility timeout should be at least six times its subscriber's timeout.
        expect(topology.queues[spec.trigger.queue].visibilityTimeoutSeconds).toBeGreaterThanOrEqual(
          6 * spec.timeoutSeconds,
        );
      }
    },
  );

  it.each(functions)(
    'function %s is linked to exactly what its code uses (least privilege)',
    (name, spec) => {
      const fn = declared(name, spec);
      const used = usedResources(spec.handler);
      // A function reads the bucket whose notifications trigger it (the bucket comes in the event).
      if ('queue' in spec.trigger) {
        const q = spec.trigger.queue;
        for (const n of topology.notifications) if (n.queue === q) used.buckets.add(n.bucket);
      }
      // fetch gets the source credentials; api its bearer token.
      const secrets =
        name === 'fetch'
          ? secretNames(loadFactories(join(import.meta.dirname, '..', '..', 'config')))
          : name === 'api'
            ? ['API_TOKEN']
            : [];
      expect(linkedIds(fn)).toEqual(
        [
          ...[...used.buckets].map((b) => linkName('bucket', b)),
          ...[...used.queues].map((q) => linkName('queue', q)),
          ...secrets,
        ].sort(),
      );
    },
  );

  it.each(functions)(
    'function %s may read the attributes of the queues it watches, nothing more',
    (name, spec) => {
      const fn = declared(name, spec);
      const watched = spec.watches ?? [];
      if (watched.length === 0) {
        expect(fn.permissions).toBeUndefined();
        return;
      }
      expect(fn.permissions).toEqual([
        {
          actions: ['sqs:GetQueueAttributes'],
          resources: watched.flatMap((q) => [
            `arn:queue:${linkName('queue', q)}`,
            `arn:queue:${linkName('dlq', q)}`,
          ]),
        },
      ]);
      for (const q of watched) {
        expect(fn.environment).toMatchObject({
          [`QUEUE_URL_${q.toUpperCase()}`]: `https://sqs.example/${linkName('queue', q)}`,
          [`DLQ_URL_${q.toUpperCase()}`]: `https://sqs.example/${linkName('dlq', q)}`,
        });
      }
    },
  );

  it('the function with a URL serves the built dashboard from its package', () => {
    const [name, spec] = functions.find(([, s]) => 'url' in s.trigger)!;
    const fn = declared(name, spec);
    expect(fn.copyFiles).toContainEqual({ from: 'dashboard/dist', to: 'dashboard' });
    expect(fn.environment).toMatchObject({ DASHBOARD_DIR: '/var/task/dashboard' });
  });

  it('outputs what the CLI needs for --stage: the stage, region, buckets, API URL, every queue and DLQ URL', async () => {
    const outputs = (await runStacks()) as Record<string, unknown>;
    expect(outputs).toMatchObject({ stage: 'test', region: 'us-test-1', apiUrl: 'https://fn.example/' });
    for (const q of Object.keys(topology.queues) as QueueName[]) {
      expect((outputs.queueUrls as Record<string, string>)[q]).toBe(
        `https://sqs.example/${linkName('queue', q)}`,
      );
      expect((outputs.dlqUrls as Record<string, string>)[q]).toBe(
        `https://sqs.example/${linkName('dlq', q)}`,
      );
    }
  });

  it('its outputs are what `--stage` reads, the warehouse retention included (status judges by it)', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { resolveTarget } = await import('../../local/target.js');
    const saved = { ...process.env };
    const path = join(mkdtempSync(join(tmpdir(), 'outputs-')), 'outputs.json');
    try {
      writeFileSync(path, JSON.stringify(await runStacks()));
      expect((await resolveTarget({ stage: 'test', outputs: path })).warehouseRetentionDays).toBeUndefined();
      process.env.WAREHOUSE_RETENTION_DAYS = '90';
      writeFileSync(path, JSON.stringify(await runStacks()));
      const target = await resolveTarget({ stage: 'test', outputs: path });
      expect(target).toMatchObject({ kind: 'stage', region: 'us-test-1', warehouseRetentionDays: 90 });
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });

  it('creates one secret per name factories.yaml refers to, never a value', () => {
    expect(rec.secrets.sort()).toEqual(
      ['API_TOKEN', ...secretNames(loadFactories(join(import.meta.dirname, '..', '..', 'config')))].sort(),
    );
    expect(rec.secrets).toContain('DEMO_SFTP_PASSWORD');
  });

  it('a batch size changed in the topology changes the stacks (the runtime reads the same object)', async () => {
    const etl = topology.functions.etl.trigger as { batchSize: number };
    const before = etl.batchSize;
    etl.batchSize = 7;
    try {
      await runStacks();
      expect(rec.subscribers[linkName('queue', 'etl')]![0]!.args.batch.size).toBe(7);
    } finally {
      etl.batchSize = before;
    }
  });
});
