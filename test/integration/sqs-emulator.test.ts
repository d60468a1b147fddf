import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CancelMessageMoveTaskCommand,
  ChangeMessageVisibilityBatchCommand,
  ChangeMessageVisibilityCommand,
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteMessageCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ListDeadLetterSourceQueuesCommand,
  ListMessageMoveTasksCommand,
  ListQueuesCommand,
  type Message,
  type MessageAttributeValue,
  PurgeQueueCommand,
  ReceiveMessageCommand,
  type ReceiveMessageCommandInput,
  SendMessageBatchCommand,
  SendMessageCommand,
  SetQueueAttributesCommand,
  SQSClient,
  StartMessageMoveTaskCommand,
} from '@aws-sdk/client-sqs';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SqsEmulator, startSqsEmulator } from '../../local/sqs-emulator/index.js';
import { Sha256 } from '../helpers/sha256.js';

const REGION = 'us-east-1';
const ACCOUNT = '000000000000';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'local/sqs-emulator/main.ts');

/** The key pair the emulators under test accept. */
const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };

function sqsClient(
  endpoint: string,
  options: { accessKeyId?: string; secretAccessKey?: string; maxAttempts?: number } = {},
): SQSClient {
  return new SQSClient({
    endpoint,
    region: REGION,
    credentials: {
      accessKeyId: options.accessKeyId ?? CREDENTIALS.accessKeyId,
      secretAccessKey: options.secretAccessKey ?? CREDENTIALS.secretAccessKey,
    },
    ...(options.maxAttempts ? { maxAttempts: options.maxAttempts } : {}),
  });
}

const dirs: string[] = [];
async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sqs-emulator-'));
  dirs.push(dir);
  return dir;
}

let emulator: SqsEmulator;
let sqs: SQSClient;
beforeAll(async () => {
  emulator = await startSqsEmulator({
    dir: await dataDir(),
    port: 0,
    region: REGION,
    credentials: CREDENTIALS,
  });
  sqs = sqsClient(emulator.url);
});
afterAll(async () => {
  sqs?.destroy();
  await emulator?.stop();
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function createQueue(name: string, attributes?: Record<string, string>, client = sqs): Promise<string> {
  const { QueueUrl } = await client.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
  return QueueUrl!;
}

async function attributes(queueUrl: string, client = sqs): Promise<Record<string, string>> {
  const res = await client.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['All'] }),
  );
  return res.Attributes ?? {};
}

async function receive(queueUrl: string, input: Partial<ReceiveMessageCommandInput> = {}, client = sqs) {
  const res = await client.send(
    new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, ...input }),
  );
  return res.Messages ?? [];
}

const bodies = (messages: Message[]) => messages.map((m) => m.Body);

async function deleteAll(queueUrl: string, messages: Message[], client = sqs): Promise<void> {
  for (const m of messages) {
    await client.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle! }));
  }
}

describe('queues', () => {
  it('creates idempotently, lists, describes, configures, purges and deletes queues', async () => {
    const unknownAttribute: Record<string, string> = { Colour: 'blue' };
    const orders = await createQueue('orders', { VisibilityTimeout: '45' });
    expect(orders).toBe(`${emulator.url}/${ACCOUNT}/orders`);
    expect(await createQueue('orders', { VisibilityTimeout: '45' })).toBe(orders);
    await expect(createQueue('orders', { VisibilityTimeout: '46' })).rejects.toMatchObject({
      name: 'QueueNameExists',
      Code: 'QueueAlreadyExists',
    });
    await createQueue('orders-dlq');
    await createQueue('other');

    expect((await sqs.send(new GetQueueUrlCommand({ QueueName: 'orders' }))).QueueUrl).toBe(orders);
    await expect(sqs.send(new GetQueueUrlCommand({ QueueName: 'missing' }))).rejects.toMatchObject({
      name: 'QueueDoesNotExist',
      Code: 'AWS.SimpleQueueService.NonExistentQueue',
      $metadata: { httpStatusCode: 400 },
    });

    const all = await sqs.send(new ListQueuesCommand({ QueueNamePrefix: 'orders' }));
    expect(all.QueueUrls).toEqual([orders, `${emulator.url}/${ACCOUNT}/orders-dlq`]);
    expect(all.NextToken).toBeUndefined();
    const first = await sqs.send(new ListQueuesCommand({ QueueNamePrefix: 'orders', MaxResults: 1 }));
    expect(first.QueueUrls).toEqual([orders]);
    const second = await sqs.send(
      new ListQueuesCommand({ QueueNamePrefix: 'orders', MaxResults: 1, NextToken: first.NextToken }),
    );
    expect(second).toMatchObject({ QueueUrls: [`${emulator.url}/${ACCOUNT}/orders-dlq`] });
    expect(second.NextToken).toBeUndefined();

    const described = await attributes(orders);
    expect(described).toMatchObject({
      VisibilityTimeout: '45',
      DelaySeconds: '0',
      MaximumMessageSize: '262144',
      MessageRetentionPeriod: '345600',
      ReceiveMessageWaitTimeSeconds: '0',
      ApproximateNumberOfMessages: '0',
      ApproximateNumberOfMessagesNotVisible: '0',
      ApproximateNumberOfMessagesDelayed: '0',
      QueueArn: `arn:aws:sqs:${REGION}:${ACCOUNT}:orders`,
    });
    expect(Number(described.CreatedTimestamp)).toBeCloseTo(Date.now() / 1000, -1);
    const some = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: orders, AttributeNames: ['QueueArn', 'VisibilityTimeout'] }),
    );
    expect(some.Attributes).toEqual({ QueueArn: described.QueueArn, VisibilityTimeout: '45' });

    await sqs.send(
      new SetQueueAttributesCommand({ QueueUrl: orders, Attributes: { VisibilityTimeout: '60' } }),
    );
    expect((await attributes(orders)).VisibilityTimeout).toBe('60');
    await expect(
      sqs.send(
        new SetQueueAttributesCommand({ QueueUrl: orders, Attributes: { VisibilityTimeout: '43201' } }),
      ),
    ).rejects.toMatchObject({ name: 'InvalidAttributeValue' });
    await expect(
      sqs.send(new SetQueueAttributesCommand({ QueueUrl: orders, Attributes: unknownAttribute })),
    ).rejects.toMatchObject({ name: 'InvalidAttributeName' });

    for (const body of ['a', 'b', 'c'])
      await sqs.send(new SendMessageCommand({ QueueUrl: orders, MessageBody: body }));
    await sqs.send(new SendMessageCommand({ QueueUrl: orders, MessageBody: 'later', DelaySeconds: 60 }));
    await receive(orders, { MaxNumberOfMessages: 1 });
    expect(await attributes(orders)).toMatchObject({
      ApproximateNumberOfMessages: '2',
      ApproximateNumberOfMessagesNotVisible: '1',
      ApproximateNumberOfMessagesDelayed: '1',
    });
    await sqs.send(new PurgeQueueCommand({ QueueUrl: orders }));
    expect(await attributes(orders)).toMatchObject({
      ApproximateNumberOfMessages: '0',
      ApproximateNumberOfMessagesNotVisible: '0',
      ApproximateNumberOfMessagesDelayed: '0',
    });

    await sqs.send(new DeleteQueueCommand({ QueueUrl: orders }));
    await expect(sqs.send(new GetQueueUrlCommand({ QueueName: 'orders' }))).rejects.toMatchObject({
      name: 'QueueDoesNotExist',
    });
    expect((await sqs.send(new ListQueuesCommand({ QueueNamePrefix: 'orders' }))).QueueUrls).toEqual([
      `${emulator.url}/${ACCOUNT}/orders-dlq`,
    ]);
  });

  it('applies the FIFO naming rule and FIFO-only attributes', async () => {
    await expect(createQueue('named.fifo')).rejects.toMatchObject({ name: 'InvalidParameterValue' });
    await expect(createQueue('unnamed', { FifoQueue: 'true' })).rejects.toMatchObject({
      name: 'InvalidParameterValue',
    });
    await expect(createQueue('plain', { ContentBasedDeduplication: 'true' })).rejects.toMatchObject({
      name: 'InvalidAttributeName',
    });
    const url = await createQueue('named.fifo', { FifoQueue: 'true', ContentBasedDeduplication: 'true' });
    expect(await attributes(url)).toMatchObject({ FifoQueue: 'true', ContentBasedDeduplication: 'true' });
  });

  it('addresses a queue by account and name, whatever host its URL names', async () => {
    await createQueue('anywhere');
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/anywhere`,
        MessageBody: 'x',
      }),
    );
    expect(bodies(await receive(`http://localhost:1/${ACCOUNT}/anywhere`))).toEqual(['x']);
    await expect(
      sqs.send(
        new SendMessageCommand({ QueueUrl: `http://localhost:1/123456789012/anywhere`, MessageBody: 'x' }),
      ),
    ).rejects.toMatchObject({ name: 'QueueDoesNotExist' });
  });
});

describe('messages', () => {
  // SQS's own samples of MD5OfMessageAttributes (the SDK v3 checks MD5OfBody only, so these are checked here).
  const samples: { attributes: Record<string, MessageAttributeValue>; md5: string }[] = [
    {
      attributes: {
        test_attribute_name_2: { DataType: 'String', StringValue: 'test_attribute_value_2' },
        test_attribute_name_1: { DataType: 'String', StringValue: 'test_attribute_value_1' },
      },
      md5: 'd53f3b558fe951154770f25cb63dbba9',
    },
    {
      attributes: {
        test_attribute_name: {
          DataType: 'Binary',
          BinaryValue: new TextEncoder().encode('test_attribute_value'),
        },
      },
      md5: '23f6bd27ea87aab7dfeadcc9aebee495',
    },
    {
      attributes: {
        ordinal: { DataType: 'Number', StringValue: '1' },
        category: { DataType: 'String', StringValue: 'test' },
      },
      md5: 'd21ae90c49061e927f57df5f5d72be1f',
    },
  ];

  it('sends, receives and deletes, with the MD5 digests SQS computes', async () => {
    const url = await createQueue('digests');
    for (const [i, sample] of samples.entries()) {
      const sent = await sqs.send(
        new SendMessageCommand({
          QueueUrl: url,
          MessageBody: `sample ${i} ✓ 🚀`,
          MessageAttributes: sample.attributes,
        }),
      );
      expect(sent.MD5OfMessageBody).toBe(createHash('md5').update(`sample ${i} ✓ 🚀`).digest('hex'));
      expect(sent.MD5OfMessageAttributes).toBe(sample.md5);
    }
    const got = await receive(url, { MessageAttributeNames: ['All'], MessageSystemAttributeNames: ['All'] });
    expect(bodies(got)).toEqual(['sample 0 ✓ 🚀', 'sample 1 ✓ 🚀', 'sample 2 ✓ 🚀']);
    for (const [i, m] of got.entries()) {
      expect(m.MD5OfMessageAttributes).toBe(samples[i]!.md5);
      expect(m.MessageAttributes).toEqual(samples[i]!.attributes);
      expect(m.Attributes).toMatchObject({ ApproximateReceiveCount: '1', SenderId: ACCOUNT });
      expect(Number(m.Attributes!.SentTimestamp)).toBeLessThanOrEqual(
        Number(m.Attributes!.ApproximateFirstReceiveTimestamp),
      );
    }
    await deleteAll(url, got);
    expect(await attributes(url)).toMatchObject({
      ApproximateNumberOfMessages: '0',
      ApproximateNumberOfMessagesNotVisible: '0',
    });
  });

  it('returns the message attributes asked for, by name or prefix, with their digest', async () => {
    const url = await createQueue('selected');
    const foo = {
      'foo.a': { DataType: 'String', StringValue: 'a' },
      'foo.b': { DataType: 'Number.int', StringValue: '2' },
    };
    const sent = await sqs.send(
      new SendMessageCommand({
        QueueUrl: url,
        MessageBody: 'x',
        MessageAttributes: { ...foo, bar: { DataType: 'String', StringValue: 'b' } },
      }),
    );
    // The digest of exactly the foo.* attributes, computed by a send of those alone.
    const fooOnly = await sqs.send(
      new SendMessageCommand({ QueueUrl: url, MessageBody: 'y', MessageAttributes: foo }),
    );
    const [m] = await receive(url, { MaxNumberOfMessages: 1, MessageAttributeNames: ['foo.*'] });
    expect(m?.MessageId).toBe(sent.MessageId);
    expect(m?.MessageAttributes).toEqual(foo);
    expect(m?.MD5OfMessageAttributes).toBe(fooOnly.MD5OfMessageAttributes);
    const [n] = await receive(url, { MaxNumberOfMessages: 1, MessageAttributeNames: ['bar'] });
    expect(n?.MessageAttributes).toBeUndefined(); // 'y' has no 'bar'
    expect(n?.MD5OfMessageAttributes).toBeUndefined();
  });

  it('carries the AWSTraceHeader system attribute, with its digest', async () => {
    const url = await createQueue('traced');
    const trace = {
      AWSTraceHeader: {
        DataType: 'String',
        StringValue: 'Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1',
      },
    };
    const sent = await sqs.send(
      new SendMessageCommand({
        QueueUrl: url,
        MessageBody: 't',
        MessageSystemAttributes: trace,
        MessageAttributes: trace,
      }),
    );
    // The same digest as message attributes (checked against SQS's samples above).
    expect(sent.MD5OfMessageSystemAttributes).toBe(sent.MD5OfMessageAttributes);
    const [m] = await receive(url, { MessageSystemAttributeNames: ['AWSTraceHeader'] });
    expect(m?.Attributes).toEqual({ AWSTraceHeader: trace.AWSTraceHeader.StringValue });
  });

  it('refuses bodies and attributes that SQS refuses', async () => {
    const url = await createQueue('strict', { MaximumMessageSize: '1024' });
    const send = (MessageBody: string, MessageAttributes?: Record<string, MessageAttributeValue>) =>
      sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody, MessageAttributes }));
    await expect(send('nul \u0000')).rejects.toMatchObject({ name: 'InvalidMessageContents' });
    await expect(send('lone \uD800 surrogate')).rejects.toMatchObject({ name: 'InvalidMessageContents' });
    await expect(send('\uFFFE')).rejects.toMatchObject({ name: 'InvalidMessageContents' });
    await expect(send('')).rejects.toMatchObject({ name: 'MissingParameter' });
    await expect(send('x'.repeat(1025))).rejects.toMatchObject({ name: 'InvalidParameterValue' });
    await expect(
      send('x'.repeat(1000), { a: { DataType: 'String', StringValue: 'y'.repeat(30) } }),
    ).rejects.toMatchObject({ name: 'InvalidParameterValue' });
    await expect(
      send('x', { 'AWS.reserved': { DataType: 'String', StringValue: 'y' } }),
    ).rejects.toMatchObject({
      name: 'InvalidParameterValue',
    });
    await expect(send('x', { n: { DataType: 'Number', StringValue: 'ten' } })).rejects.toMatchObject({
      name: 'InvalidParameterValue',
    });
    await send('x'.repeat(1024));
    await send('\t\n\r \uD7FF\uE000\uFFFD\u{10000}\u{10FFFF}');
    expect(await attributes(url)).toMatchObject({ ApproximateNumberOfMessages: '2' });
  });

  it('reports batch entries that fail, and refuses malformed batches', async () => {
    const url = await createQueue('batches');
    const sent = await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: url,
        Entries: [
          { Id: 'ok-1', MessageBody: 'one' },
          { Id: 'bad', MessageBody: 'bell \u0007' },
          { Id: 'ok-2', MessageBody: 'two', DelaySeconds: 0 },
        ],
      }),
    );
    expect(sent.Successful?.map((e) => e.Id)).toEqual(['ok-1', 'ok-2']);
    expect(sent.Failed).toEqual([
      { Id: 'bad', SenderFault: true, Code: 'InvalidMessageContents', Message: expect.any(String) },
    ]);
    const entries = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ Id: `e${i}`, MessageBody: `m${i}` }));
    await expect(
      sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: entries(11) })),
    ).rejects.toMatchObject({
      name: 'TooManyEntriesInBatchRequest',
    });
    await expect(sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: [] }))).rejects.toMatchObject(
      {
        name: 'EmptyBatchRequest',
      },
    );
    await expect(
      sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: [...entries(1), ...entries(1)] })),
    ).rejects.toMatchObject({ name: 'BatchEntryIdsNotDistinct' });
    await expect(
      sqs.send(
        new SendMessageBatchCommand({ QueueUrl: url, Entries: [{ Id: 'no spaces', MessageBody: 'x' }] }),
      ),
    ).rejects.toMatchObject({ name: 'InvalidBatchEntryId' });

    const got = await receive(url);
    expect(bodies(got).sort()).toEqual(['one', 'two']);
    const changed = await sqs.send(
      new ChangeMessageVisibilityBatchCommand({
        QueueUrl: url,
        Entries: [
          { Id: 'a', ReceiptHandle: got[0]!.ReceiptHandle!, VisibilityTimeout: 120 },
          { Id: 'b', ReceiptHandle: 'not-a-receipt-handle', VisibilityTimeout: 120 },
        ],
      }),
    );
    expect(changed.Successful).toEqual([{ Id: 'a' }]);
    expect(changed.Failed).toMatchObject([{ Id: 'b', Code: 'ReceiptHandleIsInvalid', SenderFault: true }]);
    const deleted = await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: url,
        Entries: [
          ...got.map((m, i) => ({ Id: `d${i}`, ReceiptHandle: m.ReceiptHandle! })),
          { Id: 'junk', ReceiptHandle: 'junk' },
        ],
      }),
    );
    expect(deleted.Successful).toEqual([{ Id: 'd0' }, { Id: 'd1' }]);
    expect(deleted.Failed).toMatchObject([{ Id: 'junk', Code: 'ReceiptHandleIsInvalid' }]);
    expect(await attributes(url)).toMatchObject({
      ApproximateNumberOfMessages: '0',
      ApproximateNumberOfMessagesNotVisible: '0',
    });
  });
});

describe('visibility', () => {
  it('hides a received message for its visibility timeout; ChangeMessageVisibility extends or ends it', async () => {
    const url = await createQueue('visibility', { VisibilityTimeout: '1' });
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'v' }));
    const [first] = await receive(url, { MessageSystemAttributeNames: ['ApproximateReceiveCount'] });
    expect(first?.Attributes).toEqual({ ApproximateReceiveCount: '1' });
    expect(await receive(url)).toEqual([]);
    // Back after its 1 s timeout: a long poll wakes at the deadline.
    const started = Date.now();
    const [second] = await receive(url, { WaitTimeSeconds: 5, MessageSystemAttributeNames: ['All'] });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(second?.Attributes?.ApproximateReceiveCount).toBe('2');

    await sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: url,
        ReceiptHandle: second!.ReceiptHandle!,
        VisibilityTimeout: 0,
      }),
    );
    const [third] = await receive(url);
    expect(third?.MessageId).toBe(first?.MessageId);

    await sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: url,
        ReceiptHandle: third!.ReceiptHandle!,
        VisibilityTimeout: 2,
      }),
    );
    // Still hidden past the queue's 1 s timeout.
    expect(await receive(url, { WaitTimeSeconds: 1 })).toEqual([]);
    expect(bodies(await receive(url, { WaitTimeSeconds: 5 }))).toEqual(['v']);
  });

  it('refuses receipt handles that are stale, as SQS does', async () => {
    const url = await createQueue('stale', { VisibilityTimeout: '60' });
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 's' }));
    const [old] = await receive(url);
    const change = (ReceiptHandle: string, VisibilityTimeout: number) =>
      sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle, VisibilityTimeout }));
    await change(old!.ReceiptHandle!, 0);
    // The message is no longer in flight for the handle that released it.
    await expect(change(old!.ReceiptHandle!, 10)).rejects.toMatchObject({
      name: 'MessageNotInflight',
      Code: 'AWS.SimpleQueueService.MessageNotInflight',
    });
    const [current] = await receive(url);
    expect(current?.ReceiptHandle).not.toBe(old?.ReceiptHandle);
    await expect(change(old!.ReceiptHandle!, 10)).rejects.toMatchObject({ name: 'InvalidParameterValue' });
    await expect(change('garbage', 10)).rejects.toMatchObject({
      name: 'ReceiptHandleIsInvalid',
      $metadata: { httpStatusCode: 404 },
    });
    // Standard queue: deleting with an earlier receive's handle succeeds, but deletes nothing.
    await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: old!.ReceiptHandle! }));
    expect((await attributes(url)).ApproximateNumberOfMessagesNotVisible).toBe('1');
    await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: current!.ReceiptHandle! }));
    expect((await attributes(url)).ApproximateNumberOfMessagesNotVisible).toBe('0');
    // Deleting a message already deleted is no error.
    await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: current!.ReceiptHandle! }));

    // FIFO queue: a handle whose receive is over has expired.
    const fifo = await createQueue('stale.fifo', { FifoQueue: 'true', ContentBasedDeduplication: 'true' });
    await sqs.send(new SendMessageCommand({ QueueUrl: fifo, MessageBody: 'f', MessageGroupId: 'g' }));
    const [f1] = await receive(fifo);
    await sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: fifo,
        ReceiptHandle: f1!.ReceiptHandle!,
        VisibilityTimeout: 0,
      }),
    );
    await expect(
      sqs.send(new DeleteMessageCommand({ QueueUrl: fifo, ReceiptHandle: f1!.ReceiptHandle! })),
    ).rejects.toMatchObject({ name: 'InvalidParameterValue', message: expect.stringContaining('expired') });
  });
});

describe('long polling', () => {
  it('returns as soon as a message is sent, or becomes visible', async () => {
    const url = await createQueue('long-poll');
    const started = Date.now();
    const polled = receive(url, { WaitTimeSeconds: 10 });
    setTimeout(() => void sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'wake' })), 200);
    expect(bodies(await polled)).toEqual(['wake']);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThan(1_000);

    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'delayed', DelaySeconds: 1 }));
    const delayedStart = Date.now();
    expect(bodies(await receive(url, { WaitTimeSeconds: 10 }))).toEqual(['delayed']);
    const delayed = Date.now() - delayedStart;
    expect(delayed).toBeLessThan(2_000);
    process.stdout.write(
      `long poll woken by a send after ${elapsed} ms; by a 1 s delay after ${delayed} ms\n`,
    );
  });

  it('a long poll its client abandons takes nothing', async () => {
    const url = await createQueue('abandoned');
    const abort = new AbortController();
    const abandoned = sqs.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 10 }), {
      abortSignal: abort.signal,
    });
    await new Promise((r) => setTimeout(r, 100)); // let the poll park
    abort.abort();
    await expect(abandoned).rejects.toThrow();
    // The server learns of the closed connection asynchronously; give it a moment.
    await new Promise((r) => setTimeout(r, 100));
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'kept' }));
    expect(bodies(await receive(url))).toEqual(['kept']);
  });

  it('a long poll on a FIFO queue wakes when a delete unlocks its message group', async () => {
    const url = await createQueue('unlock.fifo', { FifoQueue: 'true', ContentBasedDeduplication: 'true' });
    for (const body of ['f1', 'f2']) {
      await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body, MessageGroupId: 'g' }));
    }
    const [held] = await receive(url, { MaxNumberOfMessages: 1 });
    const started = Date.now();
    const polled = receive(url, { WaitTimeSeconds: 10 });
    setTimeout(
      () => void sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: held!.ReceiptHandle! })),
      200,
    );
    expect(bodies(await polled)).toEqual(['f2']);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('stop() answers a pending long poll at once and closes within 2 s', async () => {
    const own = await startSqsEmulator({
      dir: await dataDir(),
      port: 0,
      region: REGION,
      credentials: CREDENTIALS,
    });
    const client = sqsClient(own.url);
    const url = await createQueue('stopping', undefined, client);
    const started = Date.now();
    const polled = receive(url, { WaitTimeSeconds: 20 }, client);
    await new Promise((r) => setTimeout(r, 200)); // let the poll park
    const stopping = Date.now();
    await own.stop();
    const stopMs = Date.now() - stopping;
    expect(await polled).toEqual([]);
    const pollMs = Date.now() - started;
    client.destroy();
    expect(stopMs).toBeLessThan(2_000);
    expect(pollMs).toBeLessThan(1_500);
    process.stdout.write(`stop() took ${stopMs} ms; the pending long poll ended after ${pollMs} ms\n`);
  });
});

describe('dead-letter queues', () => {
  it('dead-letters on the receive that would exceed maxReceiveCount; a move task redrives it', async () => {
    const dlq = await createQueue('jobs-dlq');
    const dlqArn = (await attributes(dlq)).QueueArn!;
    const redrivePolicy = JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: 2 });
    const jobs = await createQueue('jobs', { VisibilityTimeout: '0', RedrivePolicy: redrivePolicy });
    expect(JSON.parse((await attributes(jobs)).RedrivePolicy!)).toEqual({
      deadLetterTargetArn: dlqArn,
      maxReceiveCount: 2,
    });
    expect((await sqs.send(new ListDeadLetterSourceQueuesCommand({ QueueUrl: dlq }))).queueUrls).toEqual([
      jobs,
    ]);

    await sqs.send(new SendMessageCommand({ QueueUrl: jobs, MessageBody: 'poison' }));
    expect(bodies(await receive(jobs))).toEqual(['poison']);
    expect(bodies(await receive(jobs))).toEqual(['poison']);
    expect(await receive(jobs)).toEqual([]); // the third receive moves it
    expect(await attributes(dlq)).toMatchObject({ ApproximateNumberOfMessages: '1' });
    expect(await attributes(jobs)).toMatchObject({
      ApproximateNumberOfMessages: '0',
      ApproximateNumberOfMessagesNotVisible: '0',
    });
    const [dead] = await receive(dlq, { MessageSystemAttributeNames: ['All'], VisibilityTimeout: 0 });
    expect(dead?.Attributes).toMatchObject({
      DeadLetterQueueSourceArn: `arn:aws:sqs:${REGION}:${ACCOUNT}:jobs`,
      ApproximateReceiveCount: '3',
    });

    const { TaskHandle } = await sqs.send(new StartMessageMoveTaskCommand({ SourceArn: dlqArn }));
    const tasks = await sqs.send(new ListMessageMoveTasksCommand({ SourceArn: dlqArn }));
    expect(tasks.Results).toMatchObject([
      { Status: 'COMPLETED', SourceArn: dlqArn, ApproximateNumberOfMessagesMoved: 1 },
    ]);
    await expect(sqs.send(new CancelMessageMoveTaskCommand({ TaskHandle }))).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
    });
    expect(await attributes(dlq)).toMatchObject({ ApproximateNumberOfMessages: '0' });
    const [back] = await receive(jobs, { MessageSystemAttributeNames: ['All'] });
    expect(back?.Body).toBe('poison');
    expect(back?.Attributes?.ApproximateReceiveCount).toBe('1');
  });

  it('refuses redrive policies SQS refuses', async () => {
    const fifoDlq = await createQueue('typed-dlq.fifo', { FifoQueue: 'true' });
    const policy = (arn: string) => JSON.stringify({ deadLetterTargetArn: arn, maxReceiveCount: 3 });
    await expect(
      createQueue('typed', { RedrivePolicy: policy((await attributes(fifoDlq)).QueueArn!) }),
    ).rejects.toMatchObject({ name: 'InvalidParameterValue' });
    await expect(
      createQueue('typed', { RedrivePolicy: policy(`arn:aws:sqs:${REGION}:${ACCOUNT}:nowhere`) }),
    ).rejects.toMatchObject({ name: 'InvalidParameterValue' });
    const closed = await createQueue('closed-dlq', {
      RedriveAllowPolicy: JSON.stringify({ redrivePermission: 'denyAll' }),
    });
    await expect(
      createQueue('typed', { RedrivePolicy: policy((await attributes(closed)).QueueArn!) }),
    ).rejects.toMatchObject({ name: 'InvalidParameterValue' });
  });
});

describe('FIFO queues', () => {
  it('returns a group in order, up to 10 in one receive, other groups after, none of a group in flight', async () => {
    const url = await createQueue('groups.fifo', { FifoQueue: 'true' });
    const sequenceNumbers: bigint[] = [];
    const send = async (body: string, group: string) => {
      const res = await sqs.send(
        new SendMessageCommand({
          QueueUrl: url,
          MessageBody: body,
          MessageGroupId: group,
          MessageDeduplicationId: body,
        }),
      );
      sequenceNumbers.push(BigInt(res.SequenceNumber!));
    };
    await send('a0', 'A');
    await send('b0', 'B');
    await send('a1', 'A');
    await send('c0', 'C');
    for (let i = 2; i < 12; i++) await send(`a${i}`, 'A');
    await send('b1', 'B');
    expect(sequenceNumbers).toEqual([...sequenceNumbers].sort((x, y) => (x < y ? -1 : 1)));
    expect(new Set(sequenceNumbers).size).toBe(sequenceNumbers.length);

    const first = await receive(url, { MessageSystemAttributeNames: ['All'] });
    expect(bodies(first)).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8', 'a9']);
    expect(first.map((m) => m.Attributes?.MessageGroupId)).toEqual(Array(10).fill('A'));
    // Group A is in flight: nothing more of it, the other groups in their order.
    expect(bodies(await receive(url))).toEqual(['b0', 'b1', 'c0']);
    expect(await receive(url)).toEqual([]);
    await deleteAll(url, first.slice(0, 9));
    expect(await receive(url)).toEqual([]); // a9 still in flight
    await deleteAll(url, first.slice(9));
    const rest = await receive(url, { MessageSystemAttributeNames: ['SequenceNumber'] });
    expect(bodies(rest)).toEqual(['a10', 'a11']);
    expect(rest.map((m) => BigInt(m.Attributes!.SequenceNumber!))).toEqual(sequenceNumbers.slice(12, 14));

    const mixed = await createQueue('mixed.fifo', { FifoQueue: 'true', ContentBasedDeduplication: 'true' });
    for (const [body, group] of [
      ['x0', 'X'],
      ['y0', 'Y'],
      ['x1', 'X'],
      ['y1', 'Y'],
      ['x2', 'X'],
    ] as const) {
      await sqs.send(new SendMessageCommand({ QueueUrl: mixed, MessageBody: body, MessageGroupId: group }));
    }
    expect(bodies(await receive(mixed))).toEqual(['x0', 'x1', 'x2', 'y0', 'y1']);
    expect(bodies(await receive(mixed, { MaxNumberOfMessages: 2 }))).toEqual([]);
  });

  it('holds a group back while its first message is delayed', async () => {
    const url = await createQueue('held.fifo', {
      FifoQueue: 'true',
      ContentBasedDeduplication: 'true',
      DelaySeconds: '1',
    });
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'first', MessageGroupId: 'g' }));
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: { DelaySeconds: '0' } }));
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'second', MessageGroupId: 'g' }));
    expect(await receive(url)).toEqual([]);
    expect(bodies(await receive(url, { WaitTimeSeconds: 5 }))).toEqual(['first', 'second']);
  });

  it('deduplicates within the interval, by explicit id or by content', async () => {
    const explicit = await createQueue('dedup.fifo', { FifoQueue: 'true' });
    const send = (QueueUrl: string, MessageBody: string, MessageDeduplicationId?: string) =>
      sqs.send(
        new SendMessageCommand({ QueueUrl, MessageBody, MessageGroupId: 'g', MessageDeduplicationId }),
      );
    const one = await send(explicit, 'first', 'd1');
    const again = await send(explicit, 'second', 'd1');
    expect(again.MessageId).toBe(one.MessageId);
    expect(again.SequenceNumber).toBe(one.SequenceNumber);
    const got = await receive(explicit);
    expect(bodies(got)).toEqual(['first']);
    await deleteAll(explicit, got);
    // Deleting does not end the deduplication interval.
    expect((await send(explicit, 'third', 'd1')).MessageId).toBe(one.MessageId);
    expect(await receive(explicit)).toEqual([]);
    await expect(send(explicit, 'no id')).rejects.toMatchObject({ name: 'InvalidParameterValue' });
    await expect(
      sqs.send(new SendMessageCommand({ QueueUrl: explicit, MessageBody: 'x', MessageDeduplicationId: 'x' })),
    ).rejects.toMatchObject({ name: 'MissingParameter' });
    await expect(
      sqs.send(
        new SendMessageCommand({
          QueueUrl: explicit,
          MessageBody: 'x',
          MessageGroupId: 'g',
          MessageDeduplicationId: 'x',
          DelaySeconds: 5,
        }),
      ),
    ).rejects.toMatchObject({ name: 'InvalidParameterValue' });

    const content = await createQueue('content.fifo', {
      FifoQueue: 'true',
      ContentBasedDeduplication: 'true',
    });
    const a = await send(content, 'same');
    expect((await send(content, 'same')).MessageId).toBe(a.MessageId);
    expect((await send(content, 'other')).MessageId).not.toBe(a.MessageId);
    expect(bodies(await receive(content))).toEqual(['same', 'other']);
  });
});

describe('the Query protocol', () => {
  const signer = new SignatureV4({
    service: 'sqs',
    region: REGION,
    credentials: CREDENTIALS,
    sha256: Sha256,
  });
  /** A form request as older SDKs send it, signed (SigV4) with the emulator's key pair. */
  const form = async (path: string, params: Record<string, string>) => {
    const url = new URL(`${emulator.url}${path}`);
    const body = new URLSearchParams({ Version: '2012-11-05', ...params }).toString();
    const signed = await signer.sign({
      method: 'POST',
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      query: {},
      headers: { host: url.host, 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      body,
    });
    const res = await fetch(url, { method: 'POST', headers: signed.headers, body });
    return { status: res.status, xml: await res.text() };
  };
  const field = (xml: string, name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];

  it('answers form requests in XML, as older CLIs and SDKs expect', async () => {
    const created = await form('/', {
      Action: 'CreateQueue',
      QueueName: 'query',
      'Attribute.1.Name': 'VisibilityTimeout',
      'Attribute.1.Value': '50',
    });
    expect(created.status).toBe(200);
    const url = field(created.xml, 'QueueUrl')!;
    expect(url).toBe(`${emulator.url}/${ACCOUNT}/query`);
    expect(created.xml).toMatch(
      /^<\?xml version="1.0"\?><CreateQueueResponse xmlns="[^"]+"><CreateQueueResult>/,
    );

    const sent = await form('/', {
      Action: 'SendMessage',
      QueueUrl: url,
      MessageBody: 'line one\r\n<two> & "three"',
      'MessageAttribute.1.Name': 'test_attribute_name',
      'MessageAttribute.1.Value.DataType': 'Binary',
      'MessageAttribute.1.Value.BinaryValue': Buffer.from('test_attribute_value').toString('base64'),
    });
    expect(field(sent.xml, 'MD5OfMessageAttributes')).toBe('23f6bd27ea87aab7dfeadcc9aebee495');

    // Posted to the queue's URL, without a QueueUrl parameter.
    const received = await form(`/${ACCOUNT}/query`, {
      Action: 'ReceiveMessage',
      'AttributeName.1': 'All',
      'MessageAttributeName.1': 'All',
    });
    expect(received.xml).toContain('<Body>line one&#xD;\n&#x3C;two&#x3E; &#x26; &#x22;three&#x22;</Body>');
    expect(received.xml).toContain(
      '<Attribute><Name>ApproximateReceiveCount</Name><Value>1</Value></Attribute>',
    );
    expect(received.xml).toContain(
      `<MessageAttribute><Name>test_attribute_name</Name><Value><DataType>Binary</DataType><BinaryValue>${Buffer.from('test_attribute_value').toString('base64')}</BinaryValue></Value></MessageAttribute>`,
    );

    const attrs = await form('/', { Action: 'GetQueueAttributes', QueueUrl: url, 'AttributeName.1': 'All' });
    expect(attrs.xml).toContain('<Attribute><Name>VisibilityTimeout</Name><Value>50</Value></Attribute>');
    expect(attrs.xml).toContain(
      '<Attribute><Name>ApproximateNumberOfMessagesNotVisible</Name><Value>1</Value></Attribute>',
    );

    const batch = await form('/', {
      Action: 'SendMessageBatch',
      QueueUrl: url,
      'SendMessageBatchRequestEntry.1.Id': 'a',
      'SendMessageBatchRequestEntry.1.MessageBody': 'ok',
      'SendMessageBatchRequestEntry.2.Id': 'b',
      'SendMessageBatchRequestEntry.2.MessageBody': 'bad \u0001',
    });
    expect(batch.xml).toMatch(/<SendMessageBatchResultEntry><Id>a<\/Id><MessageId>/);
    expect(batch.xml).toMatch(
      /<BatchResultErrorEntry><Id>b<\/Id><SenderFault>true<\/SenderFault><Code>InvalidMessageContents<\/Code>/,
    );

    const missing = await form('/', { Action: 'GetQueueUrl', QueueName: 'nope' });
    expect(missing.status).toBe(400);
    expect(field(missing.xml, 'Code')).toBe('AWS.SimpleQueueService.NonExistentQueue');
    expect(field(missing.xml, 'Type')).toBe('Sender');
    const unknown = await form('/', { Action: 'Explode' });
    expect(field(unknown.xml, 'Code')).toBe('InvalidAction');
  });
});

describe('access', () => {
  /** Whether a TCP connection to host:port is accepted. */
  const accepts = (host: string, port: number) =>
    new Promise<boolean>((resolve) => {
      const socket = connect({ host, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });

  it('listens on 127.0.0.1 only', async () => {
    expect(await accepts('127.0.0.1', emulator.port)).toBe(true);
    expect(await accepts('127.0.0.2', emulator.port)).toBe(false);
    expect(await accepts('::1', emulator.port)).toBe(false);
    const external = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a && !a.internal)
      .map((a) => a!.address);
    for (const address of external) expect(await accepts(address, emulator.port)).toBe(false);
  });

  it('answers 403 to a request not signed with the key pair, in either protocol', async () => {
    const wrongSecret = sqsClient(emulator.url, { secretAccessKey: 'not-the-secret' });
    const unknownKey = sqsClient(emulator.url, { accessKeyId: 'someone-else' });
    try {
      await expect(createQueue('guarded', undefined, wrongSecret)).rejects.toMatchObject({
        name: 'SignatureDoesNotMatch',
        $metadata: { httpStatusCode: 403 },
      });
      await expect(createQueue('guarded', undefined, unknownKey)).rejects.toMatchObject({
        name: 'InvalidClientTokenId',
        $metadata: { httpStatusCode: 403 },
      });
      const unsigned = await fetch(`${emulator.url}/`, {
        method: 'POST',
        body: new URLSearchParams({ Action: 'ListQueues' }),
      });
      expect(unsigned.status).toBe(403);
      expect(await unsigned.text()).toContain('<Code>MissingAuthenticationToken</Code>');
      expect(await createQueue('guarded')).toBe(`${emulator.url}/${ACCOUNT}/guarded`);
    } finally {
      wrongSecret.destroy();
      unknownKey.destroy();
    }
  });
});

describe('durability', () => {
  interface Child {
    process: ChildProcess;
    client: SQSClient;
  }

  /** The emulator in a process of its own, as `main.ts` runs it. */
  async function spawnEmulator(dir: string, ...flags: string[]): Promise<Child> {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--dir', dir, '--port', '0', ...flags], {
      cwd: ROOT,
      env: {
        ...process.env,
        AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const line = await new Promise<string>((resolve, reject) => {
      let stdout = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes('\n')) resolve(stdout.slice(0, stdout.indexOf('\n')));
      });
      child.once('exit', (code) =>
        reject(new Error(`emulator exited (${code}) before listening: ${stderr}`)),
      );
    });
    const { url } = JSON.parse(line) as { url: string };
    // One attempt: a send retried across a crash would be a second send, not the same one.
    return { process: child, client: sqsClient(url, { maxAttempts: 1 }) };
  }

  async function kill9(child: Child): Promise<void> {
    const exited = once(child.process, 'exit');
    child.process.kill('SIGKILL');
    await exited;
    child.client.destroy();
  }

  const drainStandard = async (client: SQSClient, url: string) => {
    const seen: string[] = [];
    for (let got = await receive(url, {}, client); got.length > 0; got = await receive(url, {}, client)) {
      seen.push(...bodies(got).map(String));
      await deleteAll(url, got, client);
    }
    return seen;
  };

  it('keeps every acknowledged send through kill -9 at random moments, exactly once; FIFO order goes on', async () => {
    const dir = await dataDir();
    let child = await spawnEmulator(dir);
    // URLs name the first process's port; later processes are addressed by account and name.
    const standard = await createQueue('durable', undefined, child.client);
    const fifo = await createQueue('durable.fifo', { FifoQueue: 'true' }, child.client);
    const attempted = new Set<string>();
    const acknowledged = new Set<string>();
    const fifoAcknowledged = new Map<number, bigint>(); // index → sequence number
    let nextFifo = 0;
    const rounds = 5;
    for (let round = 0; round < rounds; round++) {
      if (round > 0) child = await spawnEmulator(dir);
      const { client } = child;
      const senders = Array.from({ length: 6 }, async (_, worker) => {
        for (let i = 0; ; i++) {
          const body = `r${round}-w${worker}-${i}`;
          attempted.add(body);
          try {
            await client.send(new SendMessageCommand({ QueueUrl: standard, MessageBody: body }));
          } catch {
            return; // the process is gone
          }
          acknowledged.add(body);
        }
      });
      const fifoSender = (async () => {
        for (;;) {
          // An unacknowledged send is sent again (same deduplication id) by the next round.
          const body = `f${nextFifo}`;
          try {
            const res = await client.send(
              new SendMessageCommand({
                QueueUrl: fifo,
                MessageBody: body,
                MessageGroupId: 'g',
                MessageDeduplicationId: body,
              }),
            );
            fifoAcknowledged.set(nextFifo++, BigInt(res.SequenceNumber!));
          } catch {
            return;
          }
        }
      })();
      await new Promise((r) => setTimeout(r, 150 + Math.random() * 400)); // a random moment to crash at
      await kill9(child);
      await Promise.all([...senders, fifoSender]);
    }

    child = await spawnEmulator(dir);
    try {
      const received = await drainStandard(child.client, standard);
      const counts = new Map<string, number>();
      for (const body of received) counts.set(body, (counts.get(body) ?? 0) + 1);
      expect([...counts.values()].every((n) => n === 1)).toBe(true);
      expect([...acknowledged].filter((body) => !counts.has(body))).toEqual([]);
      expect(received.filter((body) => !attempted.has(body))).toEqual([]);
      expect(acknowledged.size).toBeGreaterThan(rounds * 10);

      const fifoMessages: Message[] = [];
      for (
        let got = await receive(fifo, { MessageSystemAttributeNames: ['SequenceNumber'] }, child.client);
        got.length > 0;
      ) {
        fifoMessages.push(...got);
        await deleteAll(fifo, got, child.client);
        got = await receive(fifo, { MessageSystemAttributeNames: ['SequenceNumber'] }, child.client);
      }
      const expected = Array.from({ length: nextFifo }, (_, i) => `f${i}`);
      // The last send of the last round may have been committed without being acknowledged.
      const fifoBodies = bodies(fifoMessages);
      expect([expected, [...expected, `f${nextFifo}`]]).toContainEqual(fifoBodies);
      const numbers = fifoMessages.map((m) => BigInt(m.Attributes!.SequenceNumber!));
      expect(numbers.every((n, i) => i === 0 || n > numbers[i - 1]!)).toBe(true);
      for (const [i, n] of fifoAcknowledged) expect(numbers[i]).toBe(n);
      process.stdout.write(
        `kill -9 × ${rounds}: ${acknowledged.size} acknowledged of ${attempted.size} attempted standard sends, ` +
          `${received.length} received; FIFO ${fifoBodies.length} in order\n`,
      );
    } finally {
      await kill9(child);
    }
  });

  it('brings in-flight messages back at their visibility deadline after a restart, or at once if asked', async () => {
    const dir = await dataDir();
    let child = await spawnEmulator(dir);
    // Long enough for the restart below to come before the deadline.
    const url = await createQueue('in-flight', { VisibilityTimeout: '4' }, child.client);
    for (const body of ['p', 'q', 'r']) {
      await child.client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body }));
    }
    expect(bodies(await receive(url, {}, child.client)).sort()).toEqual(['p', 'q', 'r']);
    const receivedAt = Date.now();
    await kill9(child);

    child = await spawnEmulator(dir);
    expect(await receive(url, {}, child.client)).toEqual([]);
    expect((await attributes(url, child.client)).ApproximateNumberOfMessagesNotVisible).toBe('3');
    // The deadline was stored, so it passes as if nothing happened: a long poll gets them then.
    const back = await receive(url, { WaitTimeSeconds: 10, VisibilityTimeout: 300 }, child.client);
    expect(bodies(back).sort()).toEqual(['p', 'q', 'r']);
    expect(Date.now() - receivedAt).toBeGreaterThan(3_500);
    await kill9(child);

    child = await spawnEmulator(dir, '--release-in-flight');
    try {
      const released = await receive(
        url,
        { MessageSystemAttributeNames: ['ApproximateReceiveCount'] },
        child.client,
      );
      expect(bodies(released).sort()).toEqual(['p', 'q', 'r']);
      expect(released.map((m) => m.Attributes?.ApproximateReceiveCount)).toEqual(['3', '3', '3']);
    } finally {
      await kill9(child);
    }
  });
});
