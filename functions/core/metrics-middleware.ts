import type middy from '@middy/core';
import { Pushgateway } from 'prom-client';
import { pushgatewayUrl } from './config.js';
import { logger } from './logger.js';
import { metrics, registry } from './telemetry.js';

/** Functions that have run in this process (locally several share one process; in Lambda, one each). */
const warm = new Set<string>();

/**
 * Counts every invocation (outcome, duration, cold start) and, when `PUSHGATEWAY_URL` is set, pushes
 * the function's metrics to the Pushgateway at the end of the invocation, grouped by instance
 * (`<function>-<pid>-<start>`; the series carry their `function` label). A failed push is logged and
 * never fails the invocation. Use it first in the chain so that its `after` sees the final response
 * (middy runs `after` hooks in reverse order).
 */
export function metricsMiddleware(functionName: string): middy.MiddlewareObj {
  const started = new WeakMap<object, number>();
  const instance = `${functionName}-${process.pid}-${Date.now().toString(36)}`;
  const finish = async (request: middy.Request, outcome: 'ok' | 'partial' | 'error') => {
    const t0 = started.get(request) ?? performance.now();
    metrics.invocations.inc({ function: functionName, outcome });
    metrics.invocationDuration.observe({ function: functionName }, (performance.now() - t0) / 1000);
    const url = pushgatewayUrl();
    if (!url) return;
    try {
      await new Pushgateway(url, { timeout: 5_000 }, registry).pushAdd({
        jobName: 'telemetry-pipeline',
        // Not `function` as a grouping label: the Pushgateway would stamp it on every series pushed,
        // and where several functions share a registry (the local runtime) their series would collide.
        groupings: { instance },
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
