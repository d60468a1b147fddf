import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SQSClient } from '@aws-sdk/client-sqs';
import { startSqs } from '../../local/emulators.js';
import { localSettings } from '../../local/settings.js';

/** The project's embedded SQS on `port`, in a fresh data folder, and a client for it. */
export async function startTestSqs(port: number): Promise<{ client: SQSClient; stop: () => Promise<void> }> {
  const data = await mkdtemp(join(tmpdir(), 'tp-sqs-'));
  const settings = localSettings({ SQS_PORT: String(port), PIPELINE_DATA: data });
  const emulator = await startSqs(settings);
  const client = new SQSClient({
    endpoint: `http://127.0.0.1:${port}`,
    region: settings.AWS_REGION,
    credentials: { accessKeyId: settings.AWS_ACCESS_KEY_ID, secretAccessKey: settings.AWS_SECRET_ACCESS_KEY },
  });
  return {
    client,
    stop: async () => {
      client.destroy();
      await emulator.stop();
      await rm(data, { recursive: true, force: true });
    },
  };
}
