import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Imported first by bench/run.ts: the functions read their configuration once, at import, so the
 * embedded stack's environment (ports, data folder) must be in place before anything loads them.
 */
export const benchTmp = mkdtempSync(join(tmpdir(), 'bench-'));
Object.assign(process.env, {
  S3_ENDPOINT: 'http://127.0.0.1:29000',
  SQS_ENDPOINT: 'http://127.0.0.1:29324',
  S3_PORT: '29000',
  SQS_PORT: '29324',
  RUNTIME_PORT: '23000',
  PIPELINE_DATA: join(benchTmp, 'stack'),
  PIPELINE_TMP: join(benchTmp, 'stack', 'tmp'),
  AWS_ACCESS_KEY_ID: 'minioadmin',
  AWS_SECRET_ACCESS_KEY: 'minioadmin',
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'fatal',
});
