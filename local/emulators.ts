import { join } from 'node:path';
import { logger } from '../functions/core/logger.js';
import { type S3ObjectCreated, startS3Emulator } from './s3-emulator/index.js';
import type { LocalSettings } from './settings.js';
import { startSqsEmulator } from './sqs-emulator/index.js';

/** What an S3 store reports when an object is created; the runtime turns it into an AWS-format event. */
export interface CreatedObject {
  bucket: string;
  key: string;
  size?: number;
  eTag?: string;
  eventName: string;
}

export interface Emulator {
  name: string;
  stop(): Promise<void>;
}

const credentials = (s: LocalSettings) => ({
  accessKeyId: s.AWS_ACCESS_KEY_ID,
  secretAccessKey: s.AWS_SECRET_ACCESS_KEY,
});

/**
 * The embedded S3 (`s3-emulator/`): objects under `<data>/s3`, requests verified against the configured
 * key pair (minioadmin by default, as MinIO's), bucket notifications reported as objects are committed.
 */
export async function startS3(
  settings: LocalSettings,
  onCreated: (o: S3ObjectCreated) => void,
): Promise<Emulator> {
  const directory = join(settings.PIPELINE_DATA, 's3');
  const s3 = await startS3Emulator({
    dir: directory,
    host: settings.EMULATOR_HOST,
    port: settings.S3_PORT,
    credentials: credentials(settings),
    region: settings.AWS_REGION,
    onCreated,
  });
  logger.info({ endpoint: s3.url, directory }, 'embedded S3 listening');
  return { name: 's3', stop: () => s3.stop() };
}

/**
 * The embedded SQS (`sqs-emulator/`): queues and messages under `<data>/sqs`, requests verified
 * against the configured key pair (SigV4). Messages in flight when the process died are released at start:
 * their consumer was this process, so waiting out a visibility timeout of up to 90 minutes would only
 * delay the redo.
 */
export async function startSqs(settings: LocalSettings): Promise<Emulator> {
  const directory = join(settings.PIPELINE_DATA, 'sqs');
  const sqs = await startSqsEmulator({
    dir: directory,
    host: settings.EMULATOR_HOST,
    port: settings.SQS_PORT,
    region: settings.AWS_REGION,
    releaseInFlightOnStart: true,
    credentials: credentials(settings),
  });
  logger.info({ endpoint: sqs.url, directory }, 'embedded SQS listening');
  return { name: 'sqs', stop: () => sqs.stop() };
}
