import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { DashboardAssets } from './api/dashboard.js';
import { pipelineQueueDepths } from './api/queues.js';
import { route } from './api/router.js';
import { DELTA_KEY } from './contracts/keys.js';
import { runtimeConfig, secretValue } from './core/config.js';
import { metricsMiddleware } from './core/metrics-middleware.js';
import { headObject } from './core/s3.js';
import { SandboxedReader } from './warehouse/query-sandbox.js';

const dir = join(runtimeConfig.tmpDir, 'api');
mkdirSync(dir, { recursive: true });
// Read-only copies in /tmp, refreshed by ETag: after a batch only the delta is downloaded again. The
// queries run in a child process with memory and time limits that hold whatever SQL calls; deployed,
// the child runs this function's bundle, which starts serving queries when it sees it is the child
// (functions/warehouse/query-sandbox.ts).
const reader = new SandboxedReader(runtimeConfig.buckets.warehouse, dir);
const dashboard = new DashboardAssets(runtimeConfig.dashboardDir, runtimeConfig.deployed);

/** Function URL handler (payload 2.0). */
export async function apiRequest(event: APIGatewayProxyEventV2) {
  return route(
    {
      method: event.requestContext.http.method,
      path: event.rawPath,
      query: event.queryStringParameters ?? {},
      headers: event.headers ?? {},
      body:
        event.body && event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body,
    },
    {
      token: secretValue('API_TOKEN'),
      requireToken: runtimeConfig.deployed,
      warehouse: async () => {
        // The delta is the warehouse's commit point: it changes with every batch.
        const head = await headObject(runtimeConfig.buckets.warehouse, DELTA_KEY);
        return head && { eTag: head.eTag, lastModified: head.lastModified.toISOString(), bytes: head.size };
      },
      query: async (sql, params) => reader.query(sql, params),
      queues: pipelineQueueDepths,
      dashboard,
    },
  );
}

export const handler = middy(apiRequest).use(metricsMiddleware('api'));

/** Stops the query process (the local runtime and tests call it on shutdown). */
export async function close(): Promise<void> {
  await reader.close();
}
