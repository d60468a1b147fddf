import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { logger } from '../functions/core/logger.js';

const STOP_GRACE_MS = 5_000;

export interface EventSourceOptions {
  functionName: string;
  queueUrl: string;
  queueArn: string;
  region: string;
  batchSize: number;
  batchWindowSeconds: number;
  /**
   * FIFO queue: while a batch of the (single) warehouse group is in flight, no further message of it
   * can be received, so waiting out the batching window would only add latency: dispatch as soon as a
   * receive comes back empty.
   */
  fifo?: boolean;
  /** Local retry delay for a failed record (Lambda waits out the queue's visibility timeout). */
  retryDelaySeconds: number;
  invoke: (event: SQSEvent) => Promise<unknown>;
}

/**
 * Lambda's SQS event source mapping, locally: long-polls the queue, gathers up to `batchSize` messages
 * within the batching window, invokes the function with an `SQSEvent`, deletes the records that
 * succeeded and leaves the failed ones (`batchItemFailures`, or all of them when the invocation throws)
 * to come back — after `maxReceiveCount` receives SQS's redrive policy moves them to the DLQ.
 */
export class EventSource {
  private running = false;
  private loop: Promise<void> | undefined;
  private inFlight: Message[] = [];
  private abort = new AbortController();

  constructor(
    private readonly sqs: SQSClient,
    private readonly options: EventSourceOptions,
  ) {}

  get isRunning(): boolean {
    return this.running;
  }

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  /**
   * Stops polling. Messages of an invocation still running are made visible again at once, so they
   * go back to the queue for the next consumer instead of waiting out their visibility timeout.
   */
  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort();
    const pending = this.inFlight;
    this.inFlight = [];
    if (pending.length > 0) {
      await this.changeVisibility(pending, 0).catch((err) =>
        logger.warn({ err }, 'could not release in-flight messages'),
      );
      logger.info(
        { function: this.options.functionName, messages: pending.length },
        'in-flight messages returned to the queue',
      );
    }
    // Give a running invocation a moment to finish; its messages are already back in the queue, and
    // every function is idempotent, so leaving it unfinished loses nothing.
    await Promise.race([
      this.loop?.catch(() => undefined),
      new Promise((r) => setTimeout(r, STOP_GRACE_MS).unref()),
    ]);
  }

  private async receive(max: number, waitSeconds: number): Promise<Message[]> {
    const res = await this.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: this.options.queueUrl,
        MaxNumberOfMessages: Math.min(10, max),
        WaitTimeSeconds: waitSeconds,
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
      { abortSignal: this.abort.signal },
    );
    return res.Messages ?? [];
  }

  private async run(): Promise<void> {
    const { batchSize, batchWindowSeconds } = this.options;
    while (this.running) {
      try {
        const batch = await this.receive(batchSize, 1);
        if (batch.length === 0) continue;
        const windowEnds = Date.now() + batchWindowSeconds * 1000;
        while (this.running && batch.length < batchSize && Date.now() < windowEnds) {
          const more = await this.receive(batchSize - batch.length, 0);
          if (more.length === 0 && this.options.fifo) break;
          if (more.length === 0) await new Promise((r) => setTimeout(r, 50));
          batch.push(...more);
        }
        if (!this.running) {
          this.inFlight = batch;
          return;
        }
        await this.dispatch(batch);
      } catch (err) {
        if (!this.running) return;
        logger.error({ err, function: this.options.functionName }, 'event source poll failed; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private toRecord(m: Message): SQSRecord {
    const a = m.Attributes ?? {};
    return {
      messageId: m.MessageId!,
      receiptHandle: m.ReceiptHandle!,
      body: m.Body ?? '',
      attributes: {
        ApproximateReceiveCount: a.ApproximateReceiveCount ?? '1',
        SentTimestamp: a.SentTimestamp ?? String(Date.now()),
        SenderId: a.SenderId ?? 'local',
        ApproximateFirstReceiveTimestamp: a.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
        ...(a.MessageGroupId ? { MessageGroupId: a.MessageGroupId } : {}),
        ...(a.MessageDeduplicationId ? { MessageDeduplicationId: a.MessageDeduplicationId } : {}),
        ...(a.SequenceNumber ? { SequenceNumber: a.SequenceNumber } : {}),
      },
      messageAttributes: {},
      md5OfBody: m.MD5OfBody ?? '',
      eventSource: 'aws:sqs',
      eventSourceARN: this.options.queueArn,
      awsRegion: this.options.region,
    };
  }

  private async dispatch(batch: Message[]): Promise<void> {
    this.inFlight = batch;
    const event: SQSEvent = { Records: batch.map((m) => this.toRecord(m)) };
    let failed: Set<string>;
    try {
      const res = (await this.options.invoke(event)) as SQSBatchResponse | undefined;
      failed = new Set((res?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
    } catch {
      failed = new Set(batch.map((m) => m.MessageId!));
    }
    if (!this.running && this.inFlight.length === 0) return; // stop() already released them
    this.inFlight = [];
    const done = batch.filter((m) => !failed.has(m.MessageId!));
    const retry = batch.filter((m) => failed.has(m.MessageId!));
    for (let i = 0; i < done.length; i += 10) {
      await this.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.options.queueUrl,
          Entries: done.slice(i, i + 10).map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle! })),
        }),
      );
    }
    if (retry.length > 0) await this.changeVisibility(retry, this.options.retryDelaySeconds);
  }

  private async changeVisibility(messages: Message[], seconds: number): Promise<void> {
    for (let i = 0; i < messages.length; i += 10) {
      await this.sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: this.options.queueUrl,
          Entries: messages
            .slice(i, i + 10)
            .map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle!, VisibilityTimeout: seconds })),
        }),
      );
    }
  }
}
