import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

/**
 * Deployed metrics: what `EmfReporter` writes is CloudWatch's embedded metric format (the log lines
 * Lambda turns into metrics), with the Prometheus names and labels as metric names and dimensions, and
 * per invocation only what changed.
 */
type EmfLine = {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: {
      Namespace: string;
      Dimensions: string[][];
      Metrics: { Name: string; Unit: string }[];
    }[];
  };
} & Record<string, unknown>;

let lines: EmfLine[];
beforeEach(() => {
  // As in Lambda: the library writes one JSON line per flush to stdout.
  process.env.AWS_EMF_ENVIRONMENT = 'Lambda';
  lines = [];
  vi.spyOn(console, 'log').mockImplementation((s: unknown) => {
    lines.push(JSON.parse(String(s)) as EmfLine);
  });
});
afterEach(() => {
  vi.restoreAllMocks();
  delete process.env.AWS_EMF_ENVIRONMENT;
});

function registry() {
  const r = new Registry();
  const files = new Counter({
    name: 'telemetry_pipeline_files_total',
    help: 'h',
    labelNames: ['stage', 'factory', 'outcome'],
    registers: [r],
  });
  const depth = new Gauge({
    name: 'telemetry_pipeline_queue_messages',
    help: 'h',
    labelNames: ['queue'],
    registers: [r],
  });
  const duration = new Histogram({
    name: 'telemetry_pipeline_stage_duration_seconds',
    help: 'h',
    labelNames: ['stage'],
    buckets: [0.1, 1],
    registers: [r],
  });
  return { r, files, depth, duration };
}

const metric = (l: EmfLine) => l._aws.CloudWatchMetrics[0]!.Metrics[0]!.Name;

describe('EmfReporter', () => {
  it('writes each changed series as an embedded-metric line: Prometheus name, labels as dimensions', async () => {
    const { EmfReporter, emfNamespace } = await import('../../functions/core/emf.js');
    const { r, files, depth, duration } = registry();
    // A deployed stage's own namespace: dev and prod in one account are not added together.
    expect(emfNamespace('prod')).toBe('telemetry-pipeline/prod');
    const emf = new EmfReporter(r, emfNamespace('prod'));
    files.inc({ stage: 'etl', factory: 'plant', outcome: 'loaded' }, 3);
    depth.set({ queue: 'etl-dlq' }, 2);
    duration.observe({ stage: 'etl' }, 0.5);
    duration.observe({ stage: 'etl' }, 1.5);
    expect(await emf.report()).toBe(4);
    const byName = Object.fromEntries(lines.map((l) => [metric(l), l]));
    expect(Object.keys(byName).sort()).toEqual([
      'telemetry_pipeline_files_total',
      'telemetry_pipeline_queue_messages',
      'telemetry_pipeline_stage_duration_seconds_count',
      'telemetry_pipeline_stage_duration_seconds_sum',
    ]);
    const files0 = byName.telemetry_pipeline_files_total!;
    expect(files0._aws.CloudWatchMetrics[0]).toMatchObject({
      Namespace: 'telemetry-pipeline/prod',
      Dimensions: [['stage', 'factory', 'outcome']],
      Metrics: [{ Name: 'telemetry_pipeline_files_total', Unit: 'Count' }],
    });
    expect(files0).toMatchObject({
      stage: 'etl',
      factory: 'plant',
      outcome: 'loaded',
      telemetry_pipeline_files_total: 3,
    });
    expect(byName.telemetry_pipeline_stage_duration_seconds_sum).toMatchObject({
      stage: 'etl',
      telemetry_pipeline_stage_duration_seconds_sum: 2,
    });
    expect(byName.telemetry_pipeline_stage_duration_seconds_count).toMatchObject({
      telemetry_pipeline_stage_duration_seconds_count: 2,
    });
    expect(byName.telemetry_pipeline_queue_messages).toMatchObject({
      queue: 'etl-dlq',
      telemetry_pipeline_queue_messages: 2,
    });
  });

  it('reports per invocation only what changed since the last report (CloudWatch sums them)', async () => {
    const { EmfReporter } = await import('../../functions/core/emf.js');
    const { r, files } = registry();
    const emf = new EmfReporter(r);
    files.inc({ stage: 'etl', factory: 'plant', outcome: 'loaded' }, 3);
    await emf.report();
    lines = [];
    expect(await emf.report()).toBe(0);
    files.inc({ stage: 'etl', factory: 'plant', outcome: 'loaded' }, 2);
    files.inc({ stage: 'etl', factory: 'plant', outcome: 'quarantined' });
    await emf.report();
    expect(lines.map((l) => [l.outcome, l.telemetry_pipeline_files_total]).sort()).toEqual([
      ['loaded', 2],
      ['quarantined', 1],
    ]);
  });

  it('leaves out what Lambda reports already: process metrics and invocation durations', async () => {
    const { keptInCloudWatch } = await import('../../functions/core/emf.js');
    expect(keptInCloudWatch('telemetry_pipeline_process_heap_bytes')).toBe(false);
    expect(keptInCloudWatch('telemetry_pipeline_function_duration_seconds_sum')).toBe(false);
    expect(keptInCloudWatch('telemetry_pipeline_function_invocations_total')).toBe(true);
    expect(keptInCloudWatch('telemetry_pipeline_files_total')).toBe(true);
  });

  it('leaves out empty label values (CloudWatch refuses them) and the process metrics', async () => {
    const { EmfReporter } = await import('../../functions/core/emf.js');
    const { r, files } = registry();
    new Gauge({ name: 'telemetry_pipeline_process_heap_bytes', help: 'h', registers: [r] }).set(5);
    files.inc({ stage: 'etl', factory: '', outcome: 'loaded' });
    await new EmfReporter(r).report();
    expect(lines).toHaveLength(1);
    expect(lines[0]!._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([['stage', 'outcome']]);
  });
});
