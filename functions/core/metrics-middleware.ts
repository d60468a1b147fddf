import type middy from '@middy/core';
import { Pushgateway } from 'prom-client';
import { pushgatewayUrl, runtimeConfig } from './config.js';
import { EmfReporter, emfNamespace } from './emf.js';
import { logger } from './logger.js';
import { metrics, registry } from './telemetry.js';

/** Functions that have run in this process (locally several share one process; in Lambda, one each). */
const warm = new Set<string>();

/**
 * Counts every invocation (outcome, duration, cold start). Deployed, it then reports what the
 * invocation changed to CloudWatch in the embedded metric format (`emf.ts`: the same names and labels as
 * the local Prometheus's). When `PUSHGATEWAY_URL` is set it also pushes the function's metrics to that
 * Pushgateway, in one group per function (`instance="<function>"`): a bounded set of series, holding
 * what the latest instance of each function has counted — a live view; CloudWatch has the totals. A
 * failed report or push is logged and never fails the invocation. Use it first in the chain so that its
 * `after` sees the final response (middy runs `after` hooks in reverse order).
 */
export function metricsMiddleware(functionName: string): middy.MiddlewareObj {
  const started = new WeakMap<object, number>();
  const emf = runtimeConfig.deployed
    ? new EmfReporter(registry, emfNamespace(runtimeConfig.stage))
    : undefined;
  const finish = async (request: middy.Request, outcome: 'ok' | 'partial' | 'error') => {
    const t0 = started.get(request) ?? performance.now();
    metrics.invocations.inc({ function: functionName, outcome });
    metrics.invocationDuration.observe({ function: functionName }, (performance.now() - t0) / 1000);
    await emf
      ?.report()
      .catch((err) => logger.warn({ err, error_code: 'emf-failed' }, 'metrics report failed'));
    const url = pushgatewayUrl();
    if (!url) return;
    try {
      await new Pushgateway(url, { timeout: 5_000 }, registry).pushAdd({
        jobName: 'telemetry-pipeline',
        // Not `function` as a grouping label: the Pushgateway would stamp it on every series pushed,
        // and where several functions share a registry (the local runtime) their series would collide.
        groupings: { instance: functionName },
      });
    } catch (err) {
      logger.warn({ err, error_code: 'pushgateway-failed', url }, 'metrics push failed');
    }
  };
  return {
    before: async (request) => {
      started.set(request, performance.now());
      if (!warm.has(functionName)) {
        warm.add(functionName);
        metrics.coldStarts.inc({ function: functionName });
      }
    },
    after: async (request) => {
      const failures =
        (request.response as { batchItemFailures?: unknown[] } | undefined)?.batchItemFailures?.length ?? 0;
      await finish(request, failures > 0 ? 'partial' : 'ok');
    },
    onError: async (request) => {
      await finish(request, 'error');
    },
  };
}
