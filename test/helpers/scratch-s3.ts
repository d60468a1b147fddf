import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

/**
 * An embedded S3 of a test file's own, on port 0 (no fixed port to share with other tests), in a fresh
 * folder, with `buckets` created; the environment the functions read (endpoint, credentials, tmp) is set
 * first, so import the functions after this.
 */
export async function startScratchS3(name: string, buckets: readonly string[]) {
  const credentials = { accessKeyId: `${name}-key`, secretAccessKey: `${name}-secret` };
  const region = 'us-east-1';
  const root = await mkdtemp(join(tmpdir(), `${name}-`));
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    AWS_REGION: region,
    PIPELINE_TMP: join(root, 'tmp'),
    LOG_LEVEL: 'fatal',
  });
  await mkdir(join(root, 'tmp'), { recursive: true });
  const { startS3Emulator } = await import('../../local/s3-emulator/index.js');
  const emulator = await startS3Emulator({ dir: join(root, 's3'), port: 0, credentials, region });
  process.env.S3_ENDPOINT = emulator.url;
  const client = new S3Client({ endpoint: emulator.url, region, credentials, forcePathStyle: true });
  for (const Bucket of buckets) await client.send(new CreateBucketCommand({ Bucket }));
  return {
    root,
    emulator,
    client,
    async stop() {
      client.destroy();
      await emulator.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

export type ScratchS3 = Awaited<ReturnType<typeof startScratchS3>>;
