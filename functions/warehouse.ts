import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import middy from '@middy/core';
import type { SQSEvent } from 'aws-lambda';
import { configDir, loadFactories } from './contracts/factories.js';
import { type WarehouseMessage, warehouseMessageSchema } from './contracts/messages.js';
import { bundledReference } from './contracts/reference.js';
import { runtimeConfig } from './core/config.js';
import { logger } from './core/logger.js';
import { metricsMiddleware } from './core/metrics-middleware.js';
import { ReferenceStore } from './core/reference-store.js';
import { recordBatchFailure } from './core/sqs-batch.js';
import { warehouseLoaded } from './core/telemetry.js';
import { COMPACTION } from './warehouse/delta.js';
import { loadBatch } from './warehouse/load-batch.js';
import { WarehouseFiles } from './warehouse/warehouse-file.js';

const factories = loadFactories(runtimeConfig.configPath);
const reference = new ReferenceStore(
  runtimeConfig.buckets.lake,
  bundledReference(configDir(runtimeConfig.configPath)),
);
const dir = join(runtimeConfig.tmpDir, 'warehouse');
mkdirSync(dir, { recursive: true });
// The working copies persist in /tmp across invocations of a warm container (cached by ETag).
const files = new WarehouseFiles(runtimeConfig.buckets.warehouse, dir);

/**
 * A FIFO batch (one message group: this is the only writer). All messages are applied in one
 * transaction and one upload; if anything fails the whole batch is retried, which keeps FIFO order.
 * A body that is not a warehouse message can never load: it is logged and dropped from the batch.
 */
export async function warehouseBatch(event: SQSEvent): Promise<void> {
  const messages: WarehouseMessage[] = [];
  for (const record of event.Records) {
    let body: unknown;
    try {
      body = JSON.parse(record.body);
    } catch {
      body = undefined;
    }
    const parsed = warehouseMessageSchema.safeParse(body);
    if (parsed.success) messages.push(parsed.data);
    else {
      logger.error(
        { messageId: record.messageId, error_code: 'bad-message', issues: parsed.error.issues },
        'not a warehouse message; dropped',
      );
    }
  }
  if (messages.length === 0) return;
  const stats = await loadBatch(messages, {
    files,
    warehouseBucket: runtimeConfig.buckets.warehouse,
    tmpDir: runtimeConfig.tmpDir,
    reference: () => reference.current(),
    baselineDays: factories.enrichment.baselineDays,
    retentionDays: runtimeConfig.warehouseRetentionDays,
    ...(runtimeConfig.warehouseDeltaMaxBytes === undefined
      ? {}
      : { compaction: { ...COMPACTION, deltaMaxBytes: runtimeConfig.warehouseDeltaMaxBytes } }),
  }).catch(async (err: unknown) => {
    // The whole batch is retried: each of its messages gets the failure record (`dlq show`).
    await recordBatchFailure('warehouse', event.Records, err);
    throw err;
  });
  warehouseLoaded(stats);
}

export const handler = middy(warehouseBatch).use(metricsMiddleware('warehouse'));
