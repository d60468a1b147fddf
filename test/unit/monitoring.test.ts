import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { registry } from '../../functions/core/telemetry.js';
import { topology } from '../../topology/topology.js';

const root = join(import.meta.dirname, '..', '..');
const dashboard = JSON.parse(
  readFileSync(join(root, 'local/monitoring/grafana/dashboards/telemetry-pipeline.json'), 'utf8'),
) as {
  panels: { title: string; targets: { expr: string }[]; description?: string }[];
  templating: { list: { name: string; query: { query: string } }[] };
  description: string;
};

/** Series names a metric exports: histograms add _bucket, _sum and _count. */
async function exportedSeries(): Promise<Set<string>> {
  const out = new Set<string>();
  for (const m of await registry.getMetricsAsJSON()) {
    out.add(m.name);
    if (String(m.type) === 'histogram')
      for (const s of ['_bucket', '_sum', '_count']) out.add(`${m.name}${s}`);
  }
  return out;
}

describe('monitoring', () => {
  it('every metric the Grafana dashboard queries exists', async () => {
    const series = await exportedSeries();
    const used = dashboard.panels.flatMap((p) =>
      p.targets.flatMap((t) => [...t.expr.matchAll(/telemetry_pipeline_[a-z_]+/g)].map((m) => m[0])),
    );
    expect(used.length).toBeGreaterThan(10);
    expect(used.filter((name) => !series.has(name))).toEqual([]);
  });

  it('the dashboard covers ingestion, failures, rejects, lag p50/p95, stage duration, queue and DLQ depth', () => {
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n');
    for (const needle of [
      'telemetry_pipeline_rows_total',
      'outcome=~"error|partial"',
      'telemetry_pipeline_rejected_rows_total',
      'histogram_quantile(0.5, sum by (le) (rate(telemetry_pipeline_end_to_end_lag_seconds_bucket',
      'histogram_quantile(0.95, sum by (le) (rate(telemetry_pipeline_end_to_end_lag_seconds_bucket',
      'telemetry_pipeline_stage_duration_seconds_bucket',
      'telemetry_pipeline_queue_messages{queue=~".*-dlq"}',
    ]) {
      expect(exprs).toContain(needle);
    }
  });

  it('has factory and function variables, and every panel on a metric with those labels filters by them', async () => {
    expect(dashboard.templating.list.map((v) => [v.name, v.query.query])).toEqual([
      ['factory', 'label_values(telemetry_pipeline_files_total, factory)'],
      ['function', 'label_values(telemetry_pipeline_function_invocations_total, function)'],
    ]);
    // Each metric's label names, from the metric objects themselves.
    const labelsOf = (name: string) =>
      new Set(
        (registry.getSingleMetric(name) as unknown as { labelNames?: string[] } | undefined)?.labelNames ??
          [],
      );
    expect(labelsOf('telemetry_pipeline_rows_total').has('factory')).toBe(true);
    for (const panel of dashboard.panels) {
      for (const { expr } of panel.targets) {
        const name = /telemetry_pipeline_[a-z_]+/.exec(expr)![0].replace(/_(bucket|sum|count)$/, '');
        const has = labelsOf(name);
        if (has.has('factory')) expect(expr, panel.title).toContain('factory=~"$factory"');
        if (has.has('function')) expect(expr, panel.title).toContain('function=~"$function"');
      }
    }
    // It says which panels need which source.
    expect(dashboard.description).toContain('CloudWatch');
    expect(dashboard.panels.filter((p) => p.description?.includes('Local runtime only'))).toHaveLength(2);
  });

  it('the local QueueNotDraining rules wait, per queue, as long as the CloudWatch alarm on its oldest message', () => {
    const rules = (
      parse(readFileSync(join(root, 'local/monitoring/alerts.yml'), 'utf8')) as {
        groups: { rules: { alert: string; expr: string; labels: Record<string, string> }[] }[];
      }
    ).groups.flatMap((g) => g.rules);
    const windows = Object.fromEntries(
      rules
        .filter((r) => r.alert === 'QueueNotDraining')
        .map((r) => {
          const m = /queue_messages\{queue="(\w+)"\}\[(\d+)([hm])\]/.exec(r.expr)!;
          expect(r.labels.queue).toBe(m[1]);
          return [m[1], Number(m[2]) * (m[3] === 'h' ? 3600 : 60)];
        }),
    );
    expect(windows).toEqual(topology.alarms.oldestMessageSeconds);
  });

  it('every metric name has the telemetry_pipeline_ prefix', async () => {
    const names = (await registry.getMetricsAsJSON()).map((m) => m.name);
    expect(names.filter((n) => !n.startsWith('telemetry_pipeline_'))).toEqual([]);
  });

  it('prometheus.yml scrapes the runtime and the Pushgateway (keeping pushed labels)', () => {
    const config = parse(readFileSync(join(root, 'local/monitoring/prometheus.yml'), 'utf8')) as {
      scrape_configs: {
        job_name: string;
        metrics_path?: string;
        honor_labels?: boolean;
        static_configs: { targets: string[] }[];
      }[];
    };
    const jobs = Object.fromEntries(config.scrape_configs.map((j) => [j.job_name, j]));
    expect(jobs['telemetry-pipeline']).toMatchObject({
      metrics_path: '/metrics',
      static_configs: [{ targets: ['127.0.0.1:3000'] }],
    });
    expect(jobs.pushgateway).toMatchObject({ honor_labels: true });
  });
});
