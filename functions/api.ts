import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { route } from './api/router.js';
import { runtimeConfig, secretValue } from './core/config.js';
import { metricsMiddleware } from './core/metrics-middleware.js';
import { downloadIfChanged, headObject } from './core/s3.js';
import { queryWarehouse } from './warehouse/query.js';
import { WAREHOUSE_KEY } from './warehouse/warehouse-file.js';

const dir = join(runtimeConfig.tmpDir, 'api');
mkdirSync(dir, { recursive: true });
const copy = join(dir, 'telemetry.duckdb');
let cachedETag: string | undefined;

/** The current warehouse, as a read-only copy in /tmp refreshed by ETag. */
async function freshCopy(): Promise<string | undefined> {
  cachedETag = await downloadIfChanged(runtimeConfig.buckets.warehouse, WAREHOUSE_KEY, copy, cachedETag);
  return cachedETag ? copy : undefined;
}

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
        const head = await headObject(runtimeConfig.buckets.warehouse, WAREHOUSE_KEY);
        return head && { eTag: head.eTag, lastModified: head.lastModified.toISOString(), bytes: head.size };
      },
      query: async (sql) => queryWarehouse((await freshCopy())!, sql),
    },
  );
}

export const handler = middy(apiRequest).use(metricsMiddleware('api'));
