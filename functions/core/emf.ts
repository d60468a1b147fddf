import { Configuration, createMetricsLogger, Unit } from 'aws-embedded-metrics';
import type { MetricObjectWithValues, MetricValue, Registry } from 'prom-client';

/**
 * Deployed, the metrics go where Lambda's belong: CloudWatch, through the embedded metric format —
 * log lines Lambda's log pipeline turns into CloudWatch metrics, written with AWS's own library
 * (`aws-embedded-metrics`) — under the names and labels the local Prometheus scrapes: namespace
 * `telemetry-pipeline/<SST stage>` (`emfNamespace`), metric `telemetry_pipeline_files_total`,
 * dimensions `stage`, `factory`, `outcome`.
 * No series to expire and no gateway to run: CloudWatch aggregates what each invocation reports.
 *
 * What an invocation reports is what changed during it: for counters the increase since the last
 * report of this process, for histograms the increase of their `_sum` and `_count` (averages, totals;
 * percentiles come from CloudWatch's own per-function metrics), for gauges their value.
 */
export const EMF_NAMESPACE = 'telemetry-pipeline';

/** The namespace of a deployed stage's metrics (`PIPELINE_STAGE`, which the stacks set). */
export function emfNamespace(stage: string | undefined): string {
  return stage ? `${EMF_NAMESPACE}/${stage}` : EMF_NAMESPACE;
}

Configuration.namespace = EMF_NAMESPACE;

type Series = { name: string; labels: Record<string, string>; value: number; unit: Unit };

const seriesKey = (name: string, labels: Record<string, string>) =>
  `${name}${JSON.stringify(Object.entries(labels).sort())}`;

/** Labels as dimensions: CloudWatch refuses an empty dimension value, so an empty label is left out. */
function labelsOf(v: MetricValue<string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(v.labels)
      .map(([k, x]): [string, string] => [k, String(x ?? '')])
      .filter(([, x]) => x !== ''),
  );
}

/** The registry's series, flattened: counters and histogram sums/counts as totals, gauges as values. */
function seriesOf(metrics: MetricObjectWithValues<MetricValue<string>>[]): (Series & { total: boolean })[] {
  const out: (Series & { total: boolean })[] = [];
  for (const m of metrics) {
    // prom-client's `MetricType` is a type only: at run time the JSON carries the type's name.
    const type = m.type as unknown as 'counter' | 'gauge' | 'histogram' | 'summary';
    for (const v of m.values) {
      const labels = labelsOf(v);
      if (type === 'counter') {
        out.push({ name: m.name, labels, value: v.value, unit: Unit.Count, total: true });
      } else if (type === 'gauge') {
        out.push({ name: m.name, labels, value: v.value, unit: Unit.None, total: false });
      } else if (type === 'histogram') {
        const name = (v as { metricName?: string }).metricName ?? m.name;
        if (name.endsWith('_sum') || name.endsWith('_count')) {
          delete labels.le;
          out.push({
            name,
            labels,
            value: v.value,
            unit: name.endsWith('_count') ? Unit.Count : Unit.None,
            total: true,
          });
        }
      }
    }
  }
  return out;
}

/**
 * What CloudWatch gets: not the process metrics (memory, GC: Lambda's own reports have them), and not
 * the invocation durations, which are Lambda's free `Duration` metric — each metric–dimension
 * combination costs $0.30 a month.
 */
export function keptInCloudWatch(name: string): boolean {
  return !name.includes('_process_') && !name.startsWith('telemetry_pipeline_function_duration_seconds');
}

/**
 * Reports a registry's changes since the last call as embedded-metric log lines (one per series that
 * changed: CloudWatch dimensions are per line), under `namespace`, of the series `keep` chooses
 * (`keptInCloudWatch`). The first call reports everything counted so far.
 */
export class EmfReporter {
  private readonly last = new Map<string, number>();

  constructor(
    private readonly registry: Registry,
    private readonly namespace = EMF_NAMESPACE,
    private readonly keep: (name: string) => boolean = keptInCloudWatch,
  ) {}

  async report(): Promise<number> {
    const metrics = (await this.registry.getMetricsAsJSON()) as MetricObjectWithValues<MetricValue<string>>[];
    let lines = 0;
    for (const s of seriesOf(metrics)) {
      if (!this.keep(s.name)) continue;
      const key = seriesKey(s.name, s.labels);
      const value = s.total ? s.value - (this.last.get(key) ?? 0) : s.value;
      this.last.set(key, s.value);
      if (s.total && value <= 0) continue;
      const logger = createMetricsLogger();
      logger.setNamespace(this.namespace);
      logger.setDimensions(s.labels, false);
      logger.putMetric(s.name, value, s.unit);
      await logger.flush();
      lines++;
    }
    return lines;
  }
}
