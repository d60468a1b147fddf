import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import type { Runtime } from '../../local/runtime.js';
import { waitFor } from './wait.js';

/**
 * Starts the real local stack (embedded S3 and SQS, functions behind event sources, HTTP server) in this
 * test process, on test ports and in a fresh data folder. Test files run one at a time.
 */
export async function startTestStack(env: Record<string, string> = {}) {
  const data = await mkdtemp(join(tmpdir(), 'tp-stack-'));
  Object.assign(process.env, {
    S3_PORT: '19000',
    SQS_PORT: '19324',
    RUNTIME_PORT: '13000',
    PIPELINE_DATA: data,
    PIPELINE_TMP: join(data, 'tmp'),
    LOCAL_RETRY_DELAY_SECONDS: '1',
    // Expected failures (retries, DLQ) log errors; keep test output readable.
    LOG_LEVEL: 'fatal',
    ...env,
  });
  delete process.env.S3_ENDPOINT;
  delete process.env.SQS_ENDPOINT;
  const { startRuntime } = await import('../../local/runtime.js');
  const runtime: Runtime = await startRuntime();
  return {
    runtime,
    data,
    async put(key: string, body: string | Buffer, bucket = 'raw') {
      const res = await runtime.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
      return res.ETag!.replace(/"/g, '');
    },
    async getText(bucket: string, key: string) {
      const res = await runtime.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return res.Body!.transformToString();
    },
    async list(bucket: string, prefix = '') {
      const out: { key: string; eTag: string }[] = [];
      let token: string | undefined;
      do {
        const page = await runtime.s3.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        );
        for (const o of page.Contents ?? []) out.push({ key: o.Key!, eTag: o.ETag!.replace(/"/g, '') });
        token = page.NextContinuationToken;
      } while (token);
      return out;
    },
    /** Downloads lake Parquet objects and queries them with DuckDB. */
    async queryParquet(keys: string[], sql: (from: string) => string) {
      const dir = await mkdtemp(join(data, 'q-'));
      const paths: string[] = [];
      for (const [i, key] of keys.entries()) {
        const res = await runtime.s3.send(new GetObjectCommand({ Bucket: 'lake', Key: key }));
        const path = join(dir, `${i}.parquet`);
        const { writeFile } = await import('node:fs/promises');
        await writeFile(path, await res.Body!.transformToByteArray());
        paths.push(path);
      }
      const c = await (await DuckDBInstance.create(':memory:')).connect();
      try {
        const r = await c.runAndReadAll(sql(`read_parquet([${paths.map((p) => `'${p}'`).join(',')}])`));
        return r.getRowObjectsJson();
      } finally {
        c.closeSync();
      }
    },
    async waitForManifest(key: string, eTag?: string, timeoutMs = 20_000) {
      const { manifestKeyOf } = await import('../../functions/contracts/keys.js');
      const { manifestSchema } = await import('../../functions/contracts/manifest.js');
      return waitFor(
        async () => {
          const m = manifestSchema.parse(JSON.parse(await this.getText('lake', manifestKeyOf('raw', key))));
          return !eTag || m.source.eTag === eTag ? m : undefined;
        },
        timeoutMs,
        `manifest of ${key}`,
      );
    },
    /** Runs SQL on fresh read-only copies of the warehouse files. */
    async queryWarehouse(sql: string, bucket = 'warehouse') {
      const { WarehouseReader } = await import('../../functions/warehouse/query.js');
      const dir = await mkdtemp(join(data, 'wh-'));
      const reader = new WarehouseReader(bucket, dir);
      try {
        const result = await reader.query(sql);
        if (!result) throw new Error(`no warehouse yet in s3://${bucket}`);
        return result.rows;
      } finally {
        await reader.close();
        await rm(dir, { recursive: true, force: true });
      }
    },
    /** Waits until the warehouse reports these raw keys complete (all their rows loaded). */
    async waitForWarehouse(keys: string[], timeoutMs = 60_000) {
      return waitFor(
        async () => {
          const rows = await this.queryWarehouse('SELECT source_key FROM pipeline_files WHERE complete');
          const done = new Set(rows.map((r) => r.source_key));
          return keys.every((k) => done.has(k)) ? true : undefined;
        },
        timeoutMs,
        `${keys.length} file(s) in the warehouse`,
      );
    },
    async stop() {
      await runtime.stop();
      await rm(data, { recursive: true, force: true });
    },
  };
}

export type TestStack = Awaited<ReturnType<typeof startTestStack>>;
