import { join } from 'node:path';
import { z } from 'zod';

/**
 * Settings of the local runtime, from the environment (the CLI's flags are written into it first).
 * They are also the environment the functions see: endpoints, credentials, bucket names and queue URLs.
 * This module must not import anything that reads `functions/core/config.ts`, because that module
 * parses the environment once at import and the runtime sets it up first.
 */
/** The local key pair unless one is configured: MinIO's well-known default, so public knowledge. */
export const DEFAULT_KEY = 'minioadmin';

const schema = z.object({
  S3_ENDPOINT: z.url().optional(),
  SQS_ENDPOINT: z.url().optional(),
  S3_PORT: z.coerce.number().int().min(0).max(65535).default(9000),
  SQS_PORT: z.coerce.number().int().min(0).max(65535).default(9324),
  RUNTIME_PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  /** Interface the runtime's HTTP server binds; 0.0.0.0 only inside a container. */
  RUNTIME_HOST: z.string().min(1).default('127.0.0.1'),
  /** Interface the embedded S3 and SQS bind: loopback, as they trust whoever holds the local key pair. */
  EMULATOR_HOST: z.string().min(1).default('127.0.0.1'),
  PIPELINE_DATA: z.string().min(1).default(join(process.cwd(), '.data')),
  AWS_ACCESS_KEY_ID: z.string().min(1).default(DEFAULT_KEY),
  AWS_SECRET_ACCESS_KEY: z.string().min(1).default(DEFAULT_KEY),
  AWS_REGION: z.string().min(1).default('us-east-1'),
  /**
   * How bucket notifications reach the functions: `events` (the embedded S3 emits them), `webhook`
   * (MinIO posts them to /hooks/s3), `poll` (stores without notifications: list and diff).
   * Default: `events` with the embedded S3, `webhook` with S3_ENDPOINT.
   */
  S3_NOTIFICATIONS: z.enum(['events', 'webhook', 'poll']).optional(),
  /**
   * Bearer token of the query API and of the runtime's routes that run code (the Lambda Invoke API,
   * which also accepts requests signed with the local key pair). Unset: open, on loopback.
   */
  API_TOKEN: z.string().min(16, 'API_TOKEN must be at least 16 characters').optional(),
  /** Bearer token MinIO sends with its webhook (`MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_*`). */
  WEBHOOK_TOKEN: z.string().min(16, 'WEBHOOK_TOKEN must be at least 16 characters').optional(),
  POLL_INTERVAL_SECONDS: z.coerce.number().positive().default(2),
  /** Seconds before a failed record is retried locally (Lambda waits for the visibility timeout). */
  LOCAL_RETRY_DELAY_SECONDS: z.coerce.number().int().min(0).default(2),
  /** Seconds between reconciler runs (deployed: every 15 minutes); one also runs at start-up. */
  RECONCILE_INTERVAL_SECONDS: z.coerce.number().positive().default(60),
  /** The reconciler leaves objects younger than this to their own notification (deployed: 600). */
  RECONCILE_GRACE_SECONDS: z.coerce.number().int().min(0).default(60),
  /** …and re-emits one waiting behind a busy queue after this long (deployed: 3600). */
  RECONCILE_MAX_DEFER_SECONDS: z.coerce.number().int().min(0).default(300),
});

export type LocalSettings = z.infer<typeof schema> & {
  s3Endpoint: string;
  sqsEndpoint: string;
  embeddedS3: boolean;
  notifications: 'events' | 'webhook' | 'poll';
  embeddedSqs: boolean;
};

export function localSettings(env: NodeJS.ProcessEnv = process.env): LocalSettings {
  const parsed = schema.safeParse(env);
  if (!parsed.success) throw new Error(`environment: ${z.prettifyError(parsed.error)}`);
  const s = parsed.data;
  return {
    ...s,
    embeddedS3: !s.S3_ENDPOINT,
    embeddedSqs: !s.SQS_ENDPOINT,
    notifications: s.S3_NOTIFICATIONS ?? (s.S3_ENDPOINT ? 'webhook' : 'events'),
    s3Endpoint: s.S3_ENDPOINT ?? `http://127.0.0.1:${s.S3_PORT}`,
    sqsEndpoint: s.SQS_ENDPOINT ?? `http://127.0.0.1:${s.SQS_PORT}`,
  };
}

/** Writes the environment the functions read (see `functions/core/config.ts`). */
export function exportFunctionEnv(s: LocalSettings, queueUrls: Record<string, string>): void {
  process.env.S3_ENDPOINT = s.s3Endpoint;
  process.env.SQS_ENDPOINT = s.sqsEndpoint;
  process.env.AWS_ACCESS_KEY_ID = s.AWS_ACCESS_KEY_ID;
  process.env.AWS_SECRET_ACCESS_KEY = s.AWS_SECRET_ACCESS_KEY;
  process.env.AWS_REGION = s.AWS_REGION;
  process.env.PIPELINE_TMP ??= join(s.PIPELINE_DATA, 'tmp');
  process.env.RECONCILE_GRACE_SECONDS = String(s.RECONCILE_GRACE_SECONDS);
  process.env.RECONCILE_MAX_DEFER_SECONDS = String(s.RECONCILE_MAX_DEFER_SECONDS);
  for (const [name, url] of Object.entries(queueUrls)) process.env[`QUEUE_URL_${name.toUpperCase()}`] = url;
}
