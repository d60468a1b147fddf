import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import middy from '@middy/core';
import { LEGACY_KEY } from './contracts/keys.js';
import { runtimeConfig } from './core/config.js';
import { metricsMiddleware } from './core/metrics-middleware.js';
import { getJson, headObject, listObjects, putJson } from './core/s3.js';
import { queueDepth, sendAll } from './core/sqs.js';
import { reconciled, reconcileFailed } from './core/telemetry.js';
import { type ReconcileReport, reconcile } from './reconcile/reconcile.js';
import { WarehouseReader } from './warehouse/query.js';

// The warehouse copies persist in /tmp across invocations of a warm container (cached by ETag).
const dir = join(runtimeConfig.tmpDir, 'reconcile');
mkdirSync(dir, { recursive: true });
const warehouse = new WarehouseReader(runtimeConfig.buckets.warehouse, dir);

/**
 * Level-triggered recovery, on a schedule: compare every stage with the next and send again the events
 * that were lost, dead-lettered or never sent (see `reconcile/reconcile.ts`). A failure is counted and
 * rethrown, so the invocation fails where monitoring can see it.
 */
export async function reconcileStages(): Promise<ReconcileReport> {
  try {
    const report = await reconcile({
      buckets: { raw: runtimeConfig.buckets.raw, lake: runtimeConfig.buckets.lake },
      region: runtimeConfig.region,
      list: listObjects,
      getJson,
      head: headObject,
      putJson,
      // No warehouse yet: nothing is loaded — unless an earlier release's single file is there, which
      // the writer adopts with its next batch; until then the ledger checks wait.
      ledger: async () =>
        (await warehouse.ledger()) ??
        ((await headObject(runtimeConfig.buckets.warehouse, LEGACY_KEY)) ? undefined : new Map()),
      send: async (queue, bodies) => {
        // The stages S3 notifies: raw → etl, lake → enrich.
        const queueUrl =
          queue === 'etl'
            ? runtimeConfig.queueUrls.etl
            : queue === 'enrich'
              ? runtimeConfig.queueUrls.enrich
              : undefined;
        if (!queueUrl) throw new Error(`no queue URL for ${queue}`);
        await sendAll(queueUrl, bodies);
      },
      queueDepth: async (queue) => {
        const queueUrl = {
          etl: runtimeConfig.queueUrls.etl,
          enrich: runtimeConfig.queueUrls.enrich,
          warehouse: runtimeConfig.queueUrls.warehouse,
        }[queue];
        if (!queueUrl) throw new Error(`no queue URL for ${queue}`);
        return queueDepth(queueUrl);
      },
      ...runtimeConfig.reconcile,
      warehouseRetentionDays: runtimeConfig.warehouseRetentionDays,
    });
    reconciled(report);
    return report;
  } catch (err) {
    reconcileFailed(err as Error);
    throw err;
  }
}

export const handler = middy(reconcileStages).use(metricsMiddleware('reconcile'));

/** Closes the warehouse copy kept open between runs (the local runtime calls it on stop). */
export async function close(): Promise<void> {
  await warehouse.close();
}
