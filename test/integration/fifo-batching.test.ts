import {
  CreateQueueCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestSqs } from '../helpers/sqs.js';

/** The embedded SQS hands out FIFO messages of one group in batches, in order, as SQS does. */
let stop: () => Promise<void>;
let client: SQSClient;
beforeAll(async () => {
  ({ client, stop } = await startTestSqs(19326));
});
afterAll(async () => {
  await stop();
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
