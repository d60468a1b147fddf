import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Resource } from 'sst/resource';
import { z } from 'zod';
import { type BucketName, linkName, type QueueName } from '../../topology/topology.js';
import { ConfigError } from './errors.js';

/**
 * A linked SST resource's property (`Resource.Raw.name`, `Resource.EtlQueue.url`, a secret's `value`)
 * when running deployed; `undefined` locally, where nothing is linked.
 */
function linked(name: string, property: 'name' | 'url' | 'value'): string | undefined {
  try {
    return (Resource as unknown as Record<string, Record<string, string> | undefined>)[name]?.[property];
  } catch {
    return undefined;
  }
}

/**
 * The one place that reads the process environment. Parsed once, at import, so a typo fails at start-up
 * with the variable's name. Handlers and domain code take what they need from `runtimeConfig`.
 *
 * Locally the runtime (`local/`) sets `BUCKET_*`, `QUEUE_URL_*` and the endpoints before it loads a
 * function; deployed, SST sets the same variables from the linked resources.
 */
const envSchema = z.object({
  AWS_REGION: z.string().min(1).default('us-east-1'),
  S3_ENDPOINT: z.url().optional(),
  SQS_ENDPOINT: z.url().optional(),
  BUCKET_RAW: z.string().min(1).default('raw'),
  BUCKET_LAKE: z.string().min(1).default('lake'),
  BUCKET_WAREHOUSE: z.string().min(1).default('warehouse'),
  PIPELINE_CONFIG: z
    .string()
    .min(1)
    .default(join(import.meta.dirname, '..', '..', 'config')),
  PIPELINE_TMP: z.string().min(1).default(join(tmpdir(), 'telemetry-pipeline')),
  /** The dashboard's built files (`npm run build`); deployed, copied into the api function's package. */
  DASHBOARD_DIR: z
    .string()
    .min(1)
    .default(join(import.meta.dirname, '..', '..', 'dashboard', 'dist')),
  MAX_LINE_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(1024 * 1024),
  /** DuckDB's memory limit (e.g. `1GB`); by default derived from the Lambda's memory (see below). */
  DUCKDB_MEMORY_LIMIT: z
    .string()
    .regex(/^\d+(\.\d+)?\s*[KMGT]i?B$/i)
    .optional(),
  AWS_LAMBDA_FUNCTION_MEMORY_SIZE: z.coerce.number().int().positive().optional(),
  /** The reconciler leaves objects younger than this to their own notification. */
  RECONCILE_GRACE_SECONDS: z.coerce.number().int().min(0).default(600),
  /**
   * The warehouse delta's size at which it is folded into a new level-1 file (default 8 MB; see
   * docs/architecture.md). Smaller makes commits smaller and level-1 files more frequent.
   */
  WAREHOUSE_DELTA_MAX_BYTES: z.coerce.number().int().min(0).optional(),
  /**
   * Days of data the warehouse keeps (unset: all): at each base compaction the files the month of whose
   * newest row ended before then are dropped, and are not loaded or sent again. The lake keeps them
   * (docs/deploy.md).
   */
  WAREHOUSE_RETENTION_DAYS: z.coerce.number().int().min(1).optional(),
  /** The SST stage a deployed function belongs to (set by the stacks): its metrics' namespace. */
  PIPELINE_STAGE: z.string().min(1).optional(),
  /** The longest wait between two re-emissions of an object that keeps failing. */
  RECONCILE_MAX_BACKOFF_SECONDS: z.coerce
    .number()
    .int()
    .positive()
    .default(6 * 3600),
  /** How long a missing object may wait behind a busy queue before it is re-emitted anyway. */
  RECONCILE_MAX_DEFER_SECONDS: z.coerce.number().int().min(0).default(3600),
});

function parseEnv() {
  const parsed = envSchema.safeParse(process.env);
  if (!parsed.success) {
    throw new ConfigError('environment', z.prettifyError(parsed.error));
  }
  return parsed.data;
}

const env = parseEnv();

const bucket = (name: BucketName, local: string) => linked(linkName('bucket', name), 'name') ?? local;
/** A queue's URL: SST's link when deployed, else `QUEUE_URL_<NAME>` as the local runtime exports it. */
const queueUrl = (name: QueueName) =>
  linked(linkName('queue', name), 'url') ?? process.env[`QUEUE_URL_${name.toUpperCase()}`];
/**
 * A dead-letter queue's URL, for reading its depth (the api's overview): `DLQ_URL_<NAME>`, set by the
 * stack for the api function and by the local runtime.
 */
const dlqUrl = (name: QueueName) => process.env[`DLQ_URL_${name.toUpperCase()}`];

/** Resource names and endpoints: from SST's links when deployed, from the local runtime's environment otherwise. */
export const runtimeConfig = {
  region: env.AWS_REGION,
  s3Endpoint: env.S3_ENDPOINT,
  sqsEndpoint: env.SQS_ENDPOINT,
  buckets: {
    raw: bucket('raw', env.BUCKET_RAW),
    lake: bucket('lake', env.BUCKET_LAKE),
    warehouse: bucket('warehouse', env.BUCKET_WAREHOUSE),
  } satisfies Record<BucketName, string>,
  // Read on access: the local runtime learns the queue URLs only after its queues exist.
  queueUrls: {
    get fetch() {
      return queueUrl('fetch');
    },
    get etl() {
      return queueUrl('etl');
    },
    get enrich() {
      return queueUrl('enrich');
    },
    get warehouse() {
      return queueUrl('warehouse');
    },
  } satisfies Record<QueueName, string | undefined>,
  dlqUrls: {
    get fetch() {
      return dlqUrl('fetch');
    },
    get etl() {
      return dlqUrl('etl');
    },
    get enrich() {
      return dlqUrl('enrich');
    },
    get warehouse() {
      return dlqUrl('warehouse');
    },
  } satisfies Record<QueueName, string | undefined>,
  /** Running in AWS Lambda (set by the Lambda runtime), as opposed to the local runtime. */
  deployed: process.env.AWS_LAMBDA_FUNCTION_NAME !== undefined,
  configPath: env.PIPELINE_CONFIG,
  dashboardDir: env.DASHBOARD_DIR,
  tmpDir: env.PIPELINE_TMP,
  maxLineBytes: env.MAX_LINE_BYTES,
  warehouseDeltaMaxBytes: env.WAREHOUSE_DELTA_MAX_BYTES,
  warehouseRetentionDays: env.WAREHOUSE_RETENTION_DAYS,
  stage: env.PIPELINE_STAGE,
  reconcile: {
    graceSeconds: env.RECONCILE_GRACE_SECONDS,
    maxBackoffSeconds: env.RECONCILE_MAX_BACKOFF_SECONDS,
    maxDeferSeconds: env.RECONCILE_MAX_DEFER_SECONDS,
  },
  duckdbMemoryLimit:
    env.DUCKDB_MEMORY_LIMIT ??
    (env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE
      ? `${duckdbShareMB(env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE)}MB`
      : undefined),
};

export type RuntimeConfig = typeof runtimeConfig;

/**
 * DuckDB's share of a function's memory. What lives outside DuckDB's limit is roughly fixed: Node with
 * the handler's modules and stream buffers (≈ 180 MB measured during the ETL's byte pass) and DuckDB's
 * own allocations beyond its buffer pool (≈ 80 MB while writing Parquet). 256 MB is set aside for those
 * and 20% of the rest kept as headroom: a 512 MB function gives DuckDB 204 MB and peaks at 425–460 MB
 * on a 1 GB file (`npm run bench`).
 */
export function duckdbShareMB(functionMemoryMB: number): number {
  return Math.max(128, Math.floor((functionMemoryMB - 256) * 0.8));
}

/**
 * A source credential by name (`{ secret: NAME }` in factories.yaml). Locally it is the environment
 * variable of that name; deployed, the linked `sst.Secret` of that name.
 */
export function secretValue(name: string): string | undefined {
  return linked(name, 'value') ?? process.env[name];
}

/** Where functions push their metrics at the end of each invocation (optional; read per call). */
export function pushgatewayUrl(): string | undefined {
  return process.env.PUSHGATEWAY_URL || undefined;
}
