import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import { z } from 'zod';
import {
  type BucketName,
  dlqResourceName,
  type QueueName,
  queueResourceName,
  topology,
  warehouseRetentionDays,
} from '../topology/topology.js';
import { localS3, localSqs } from './resources.js';
import { exportFunctionEnv, localSettings } from './settings.js';

/**
 * What an operator's command acts on: the local stack (`npm start`, or MinIO and ElasticMQ through
 * S3_ENDPOINT / SQS_ENDPOINT — the same settings the runtime reads, so a non-default port needs only
 * the environment it was started with), or a deployed stage (`--stage <name>`: names and URLs from the
 * outputs `sst deploy` wrote, credentials from the usual AWS chain).
 */
export interface Target {
  kind: 'local' | 'stage';
  /** For messages: "the local stack (S3 http://127.0.0.1:9000)" or "stage prod". */
  label: string;
  region: string;
  buckets: Record<BucketName, string>;
  queueUrls: Record<QueueName, string>;
  dlqUrls: Record<QueueName, string>;
  /** The Function URL of the api function (deployed), or the local runtime's URL. */
  apiUrl: string;
  /** The warehouse's retention in days (`WAREHOUSE_RETENTION_DAYS`: the stage's, or this process's). */
  warehouseRetentionDays: number | undefined;
  s3: S3Client;
  sqs: SQSClient;
}

const QUEUES = Object.keys(topology.queues) as QueueName[];
const upper = (name: string) => name.toUpperCase();

/** `.sst/outputs.json` as `stacks/pipeline.ts` returns it. */
const outputsSchema = z.object({
  stage: z.string().min(1),
  region: z.string().min(1),
  rawBucket: z.string().min(1),
  lakeBucket: z.string().min(1),
  warehouseBucket: z.string().min(1),
  apiUrl: z.string().min(1),
  /** Empty, or absent in the outputs of an earlier release: the warehouse keeps everything. */
  warehouseRetentionDays: z.string().optional(),
  queueUrls: z.record(z.string(), z.string().min(1)),
  dlqUrls: z.record(z.string(), z.string().min(1)),
});

/** Where `sst deploy` writes the stage's outputs (the last stage deployed from this checkout). */
export const SST_OUTPUTS = join(process.cwd(), '.sst', 'outputs.json');

function stageTarget(stage: string, outputsPath: string): Target {
  if (!existsSync(outputsPath)) {
    throw new Error(
      `no ${outputsPath}: deploy first (\`npx sst deploy --stage ${stage}\` writes it), or run from the folder you deployed from`,
    );
  }
  const parsed = outputsSchema.safeParse(JSON.parse(readFileSync(outputsPath, 'utf8')));
  if (!parsed.success) {
    throw new Error(
      `${outputsPath} is not this project's outputs (${z.prettifyError(parsed.error)}): deploy again`,
    );
  }
  const o = parsed.data;
  if (o.stage !== stage) {
    throw new Error(
      `${outputsPath} holds stage "${o.stage}", not "${stage}": run \`npx sst deploy --stage ${stage}\` (or \`sst refresh\`) from here first`,
    );
  }
  const pick = (urls: Record<string, string>, what: string) =>
    Object.fromEntries(
      QUEUES.map((q) => {
        const url = urls[q];
        if (!url) throw new Error(`${outputsPath}: no ${what} URL for queue "${q}": deploy again`);
        return [q, url];
      }),
    ) as Record<QueueName, string>;
  return {
    kind: 'stage',
    label: `stage ${stage}`,
    region: o.region,
    buckets: { raw: o.rawBucket, lake: o.lakeBucket, warehouse: o.warehouseBucket },
    queueUrls: pick(o.queueUrls, 'queue'),
    dlqUrls: pick(o.dlqUrls, 'dead-letter queue'),
    apiUrl: o.apiUrl,
    warehouseRetentionDays: warehouseRetentionDays(o.warehouseRetentionDays),
    s3: new S3Client({ region: o.region }),
    sqs: new SQSClient({ region: o.region }),
  };
}

async function localTarget(): Promise<Target> {
  const settings = localSettings();
  const s3 = localS3(settings);
  const sqs = localSqs(settings);
  const label = `the local stack (S3 ${settings.s3Endpoint}, SQS ${settings.sqsEndpoint})`;
  const unreachable = (what: string, endpoint: string, err: unknown) =>
    new Error(
      `cannot reach ${what} at ${endpoint} (${(err as Error).message}): is \`npm start\` running? A stack on other ports needs the same S3_PORT / SQS_PORT (or S3_ENDPOINT / SQS_ENDPOINT) here`,
    );
  try {
    await s3.send(new HeadBucketCommand({ Bucket: 'raw' }));
  } catch (err) {
    throw unreachable('S3', settings.s3Endpoint, err);
  }
  const url = async (name: string) => {
    try {
      return (await sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl!;
    } catch (err) {
      throw unreachable(`SQS queue "${name}"`, settings.sqsEndpoint, err);
    }
  };
  const queueUrls = {} as Record<QueueName, string>;
  const dlqUrls = {} as Record<QueueName, string>;
  for (const q of QUEUES) {
    queueUrls[q] = await url(queueResourceName(q));
    dlqUrls[q] = await url(dlqResourceName(q));
  }
  return {
    kind: 'local',
    label,
    region: settings.AWS_REGION,
    buckets: { raw: 'raw', lake: 'lake', warehouse: 'warehouse' },
    queueUrls,
    dlqUrls,
    apiUrl: `http://127.0.0.1:${settings.RUNTIME_PORT}`,
    warehouseRetentionDays: warehouseRetentionDays(process.env.WAREHOUSE_RETENTION_DAYS),
    s3,
    sqs,
  };
}

/**
 * The target of a command, with the environment the functions' modules read set to match (call it
 * before importing anything under `functions/`: they read their configuration once, at import).
 */
export async function resolveTarget(opts: { stage?: string; outputs?: string } = {}): Promise<Target> {
  if (opts.stage) {
    const target = stageTarget(opts.stage, opts.outputs ?? SST_OUTPUTS);
    // Deployed resources: the SDK's default endpoints and credential chain.
    delete process.env.S3_ENDPOINT;
    delete process.env.SQS_ENDPOINT;
    process.env.AWS_REGION = target.region;
    exportTargetEnv(target);
    return target;
  }
  const target = await localTarget();
  exportFunctionEnv(localSettings(), {});
  exportTargetEnv(target);
  return target;
}

function exportTargetEnv(t: Target): void {
  process.env.BUCKET_RAW = t.buckets.raw;
  process.env.BUCKET_LAKE = t.buckets.lake;
  process.env.BUCKET_WAREHOUSE = t.buckets.warehouse;
  for (const q of QUEUES) {
    process.env[`QUEUE_URL_${upper(q)}`] = t.queueUrls[q];
    process.env[`DLQ_URL_${upper(q)}`] = t.dlqUrls[q];
  }
}

/** The target a command was given: `--stage` (a global option) or the local stack. */
export function targetOf(cmd: { optsWithGlobals(): { stage?: string } }): Promise<Target> {
  const { stage } = cmd.optsWithGlobals();
  return resolveTarget(stage ? { stage } : {});
}
