import {
  CreateQueueCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EventSource } from '../../local/event-source.js';
import { startTestSqs } from '../helpers/sqs.js';
import { waitFor } from '../helpers/wait.js';

let stop: () => Promise<void>;
let sqs: SQSClient;
beforeAll(async () => {
  ({ client: sqs, stop } = await startTestSqs(19325));
});
afterAll(async () => {
  await stop();
});

it('batches messages like Lambda and deletes only the records that succeeded', async () => {
  const { QueueUrl } = await sqs.send(
    new CreateQueueCommand({ QueueName: 'batching', Attributes: { VisibilityTimeout: '60' } }),
  );
  for (let i = 0; i < 5; i++) await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: `m${i}` }));
  const seen: string[][] = [];
  const source = new EventSource(sqs, {
    functionName: 'f',
    queueUrl: QueueUrl!,
    queueArn: 'arn:aws:sqs:us-east-1:000000000000:batching',
    region: 'us-east-1',
    batchSize: 10,
    batchWindowSeconds: 1,
    retryDelaySeconds: 0,
    invoke: async (event) => {
      seen.push(event.Records.map((r) => r.body));
      // m3 fails on its first delivery only
      const fail = event.Records.filter(
        (r) => r.body === 'm3' && r.attributes.ApproximateReceiveCount === '1',
      );
      return { batchItemFailures: fail.map((r) => ({ itemIdentifier: r.messageId })) };
    },
  });
  source.start();
  await waitFor(async () => seen.flat().filter((b) => b === 'm3').length === 2, 10_000, 'm3 redelivered');
  await source.stop();
  expect(seen[0]?.sort()).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
  expect(seen.flat().sort()).toEqual(['m0', 'm1', 'm2', 'm3', 'm3', 'm4']);
});

it('on stop, the messages of an invocation still running go back to the queue at once', async () => {
  const { QueueUrl } = await sqs.send(
    new CreateQueueCommand({ QueueName: 'inflight', Attributes: { VisibilityTimeout: '300' } }),
  );
  await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'slow' }));
  let started = false;
  let release: () => void = () => undefined;
  const source = new EventSource(sqs, {
    functionName: 'f',
    queueUrl: QueueUrl!,
    queueArn: 'arn:aws:sqs:us-east-1:000000000000:inflight',
    region: 'us-east-1',
    batchSize: 1,
    batchWindowSeconds: 0,
    retryDelaySeconds: 0,
    invoke: async () => {
      started = true;
      await new Promise<void>((r) => {
        release = r;
      });
      return { batchItemFailures: [] };
    },
  });
  source.start();
  await waitFor(async () => started, 10_000, 'invocation started');
  const stopping = source.stop();
  // Without the release, the message would stay invisible for the 300 s visibility timeout.
  const back = await waitFor(
    async () =>
      (await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 1, WaitTimeSeconds: 1 })))
        .Messages?.[0],
    5_000,
    'message visible again',
  );
  expect(back.Body).toBe('slow');
  release();
  await stopping;
});
