import { SQSClient } from '@aws-sdk/client-sqs';
import { startSqs } from '../../local/emulators.js';
import { localSettings } from '../../local/settings.js';

/** The project's embedded SQS (fauxqs with its FIFO patch) on `port`, and a client for it. */
export async function startTestSqs(port: number): Promise<{ client: SQSClient; stop: () => Promise<void> }> {
  const emulator = await startSqs(localSettings({ SQS_PORT: String(port) }));
  const client = new SQSClient({
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  });
  return {
    client,
    stop: async () => {
      client.destroy();
      await emulator.stop();
    },
  };
}
