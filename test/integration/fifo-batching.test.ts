import {
  CreateQueueCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Emulator, startSqs } from '../../local/emulators.js';
import { localSettings } from '../../local/settings.js';

/** The embedded SQS hands out FIFO messages of one group in batches, in order, as SQS does. */
let sqs: Emulator;
let client: SQSClient;
beforeAll(async () => {
  sqs = await startSqs(localSettings({ SQS_PORT: '19326' }));
  client = new SQSClient({
    endpoint: 'http://127.0.0.1:19326',
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  });
});
afterAll(async () => {
  client.destroy();
  await sqs.stop();
});

it('returns up to 10 messages of a group per receive, in order, and none while they are in flight', async () => {
  const { QueueUrl } = await client.send(
    new CreateQueueCommand({ QueueName: 'batch.fifo', Attributes: { FifoQueue: 'true' } }),
  );
  for (let i = 0; i < 15; i++) {
    await client.send(
      new SendMessageCommand({
        QueueUrl,
        MessageBody: `m${i}`,
        MessageGroupId: 'g',
        MessageDeduplicationId: `d${i}`,
      }),
    );
  }
  const first = await client.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10 }));
  expect(first.Messages?.map((m) => m.Body)).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
  const locked = await client.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10 }));
  expect(locked.Messages ?? []).toEqual([]);
  for (const m of first.Messages!)
    await client.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: m.ReceiptHandle! }));
  const rest = await client.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10 }));
  expect(rest.Messages?.map((m) => m.Body)).toEqual(['m10', 'm11', 'm12', 'm13', 'm14']);
});
