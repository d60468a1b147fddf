import { execFile } from 'node:child_process';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSRecord } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { failureRecordSchema } from '../../functions/contracts/failures.js';
import { failureKey } from '../../functions/contracts/keys.js';
import { WAREHOUSE_GROUP } from '../../functions/contracts/messages.js';
import { buildS3Notification } from '../../functions/core/s3-event.js';
import { joinLines, jsonlReadings } from '../../local/demo-data.js';
import type { Target } from '../../local/target.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

/**
 * `telemetry-pipeline dlq` on the embedded stack: a file whose ETL throws (its scratch folder is not a
 * folder) dead-letters after 3 receives with its error recorded; list and show find it and leave the
 * DLQ as it was; once the cause is fixed, a redrive by id loads it into the warehouse. Also: unknown
 * ids, `--all` through StartMessageMoveTask, the FIFO warehouse DLQ, and a failure record that cannot
 * be written.
 */

let stack: TestStack;
let target: Target;
let dlq: typeof import('../../local/dlq.js');

beforeAll(async () => {
  stack = await startTestStack({
    S3_PORT: '32000',
    SQS_PORT: '32324',
    RUNTIME_PORT: '32300',
    LOCAL_RETRY_DELAY_SECONDS: '0',
  });
  // resolveTarget exports the CLI's environment; the stack in this process keeps its own.
  const env = { ...process.env };
  const { resolveTarget } = await import('../../local/target.js');
  target = await resolveTarget();
  for (const k of Object.keys(process.env)) if (!(k in env)) delete process.env[k];
  Object.assign(process.env, env);
  dlq = await import('../../local/dlq.js');
});
afterAll(async () => {
  await stack?.stop();
});

/** Runs a `dlq` command function in this process: its exit code and what it printed. */
async function cli(
  run: (out: (s: string) => void) => Promise<number>,
): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await run((s) => {
    out += s;
  });
  return { code, out };
}

async function dlqCounts(queue: 'etl' | 'warehouse') {
  const a = await stack.runtime.sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: target.dlqUrls[queue],
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return {
    visible: Number(a.Attributes?.ApproximateNumberOfMessages),
    inFlight: Number(a.Attributes?.ApproximateNumberOfMessagesNotVisible),
  };
}

async function failureRecordOf(queue: 'etl' | 'warehouse', id: string) {
  return failureRecordSchema.parse(JSON.parse(await stack.getText('lake', failureKey(queue, id))));
}

const key = 'plant-a/2024/03/04/line-3.jsonl';
let poisonId: string;

describe('a file whose ETL throws', () => {
  it('ends in etl-dlq after 3 receives, its error recorded next to it', async () => {
    // The ETL's scratch folder (PIPELINE_TMP) becomes a file: every attempt fails with ENOTDIR, as a
    // broken or full /tmp would fail it (the TempSpaceError case), deterministically and unprivileged.
    const tmp = join(stack.data, 'tmp');
    await rename(tmp, `${tmp}-aside`);
    await writeFile(tmp, 'not a folder\n');
    const body = joinLines(jsonlReadings({ seed: 7, lines: 40, start: new Date('2024-03-04T00:00:00Z') }));
    const eTag = await stack.put(key, body);
    await waitFor(async () => (await dlqCounts('etl')).visible === 1, 30_000, 'the file in etl-dlq');
    expect((await stack.runtime.queueDepths()).etl).toBe(0);

    const { code, out } = await cli((o) => dlq.runDlqList(target, 'etl', { json: true }, o));
    expect(code).toBe(0);
    const [listing] = JSON.parse(out) as {
      dlq: string;
      depth: number;
      messages: {
        id: string;
        about: string;
        objects: unknown[];
        receives: number;
        sentAt: string;
        error: { name: string; message: string; code?: string } | null;
        failure: { attempts: number; function: string; queue: string } | null;
      }[];
    }[];
    expect(listing).toMatchObject({ dlq: 'etl-dlq', depth: 1 });
    expect(listing!.messages).toHaveLength(1);
    const m = listing!.messages[0]!;
    poisonId = m.id;
    expect(m).toMatchObject({
      about: `s3://raw/${key}`,
      objects: [{ bucket: 'raw', key, eTag }],
      receives: 3,
      error: { code: 'ENOTDIR', message: expect.stringContaining('ENOTDIR') },
      failure: { attempts: 3, function: 'etl', queue: 'etl' },
    });
    expect(Date.parse(m.sentAt)).toBeGreaterThan(Date.now() - 60_000);

    const record = await failureRecordOf('etl', poisonId);
    expect(record.error.stack?.split('\n').length).toBeLessThanOrEqual(6);
    expect(Date.parse(record.firstAttemptAt)).toBeLessThanOrEqual(Date.parse(record.lastFailureAt));
  });

  it('listing leaves the DLQ as it was: same depth, every message visible', async () => {
    expect(await dlqCounts('etl')).toEqual({ visible: 1, inFlight: 0 });
    const { code, out } = await cli((o) => dlq.runDlqList(target, undefined, {}, o));
    expect(code).toBe(0);
    expect(out).toContain('etl-dlq: 1 message');
    expect(out).toContain('fetch-dlq: empty');
    expect(out).toContain('warehouse-dlq.fifo: empty');
    expect(out).toContain(poisonId);
    expect(out).toContain('ENOTDIR');
    expect(await dlqCounts('etl')).toEqual({ visible: 1, inFlight: 0 });
    expect((await stack.runtime.queueDepths())['etl-dlq']).toBe(1);
  });

  it('dlq show gives its body, attributes and error', async () => {
    const text = await cli((o) => dlq.runDlqShow(target, 'etl', poisonId, {}, o));
    expect(text.code).toBe(0);
    expect(text.out).toContain(`s3://raw/${key}`);
    expect(text.out).toContain('"Records": [');
    expect(text.out).toContain('SentTimestamp');
    expect(text.out).toMatch(/attempts\s*│\s*3/);
    expect(text.out).toContain('ENOTDIR');

    const json = await cli((o) => dlq.runDlqShow(target, 'etl-dlq', poisonId, { json: true }, o));
    const shown = JSON.parse(json.out);
    expect(shown).toMatchObject({
      id: poisonId,
      queue: 'etl',
      dlq: 'etl-dlq',
      body: { Records: [{ s3: { bucket: { name: 'raw' } } }] },
      failure: { attempts: 3, error: { name: 'Error', code: 'ENOTDIR' } },
    });
    expect(await dlqCounts('etl')).toEqual({ visible: 1, inFlight: 0 });
  });

  it('once the cause is fixed, redrive by id loads the file into the warehouse', async () => {
    const tmp = join(stack.data, 'tmp');
    await rm(tmp);
    await rename(`${tmp}-aside`, tmp);

    const { code, out } = await cli((o) => dlq.runDlqRedrive(target, 'etl', { id: [poisonId] }, o));
    expect(code).toBe(0);
    expect(out).toContain('etl-dlq → etl: 1 message moved');
    expect(out).toContain(poisonId);
    expect(await dlqCounts('etl')).toEqual({ visible: 0, inFlight: 0 });
    await stack.waitForWarehouse([key]);
    const rows = await stack.queryWarehouse(
      `SELECT lines_loaded FROM pipeline_files WHERE source_key = '${key}'`,
    );
    expect(rows.map((r) => Number(r.lines_loaded))).toEqual([40]);
  });
});

describe('redrive', () => {
  it('of an unknown id says so and exits non-zero (in process and through the real CLI)', async () => {
    const { code, out } = await cli((o) => dlq.runDlqRedrive(target, 'etl', { id: ['no-such-id'] }, o));
    expect(code).toBe(1);
    expect(out).toContain('not found in etl-dlq: no-such-id');

    const run = (...args: string[]) =>
      promisify(execFile)(process.execPath, ['bin/telemetry-pipeline.mjs', ...args], {
        env: process.env,
      }).then(
        (r) => ({ code: 0, ...r }),
        (err: { code: number; stdout: string; stderr: string }) => err,
      );
    // The DLQ is empty now: the four commands can run at once.
    const [redriven, shown, listed, bad] = await Promise.all([
      run('dlq', 'redrive', 'etl', '--id', 'no-such-id'),
      run('dlq', 'show', 'etl', 'no-such-id'),
      run('dlq', 'list', 'etl', '--json'),
      run('dlq', 'list', 'nope'),
    ]);
    expect(redriven.code).toBe(1);
    expect(redriven.stdout).toContain('not found in etl-dlq: no-such-id');
    expect(shown.code).toBe(1);
    expect(shown.stderr).toContain('no message no-such-id in etl-dlq');
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual([{ queue: 'etl', dlq: 'etl-dlq', depth: 0, messages: [] }]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('unknown queue "nope"');
  });

  it('--all moves every dead letter back with a message move task; one that fails again returns', async () => {
    const missing = 'plant-a/2024/03/04/never-uploaded.log';
    await stack.runtime.sqs.send(
      new SendMessageCommand({
        QueueUrl: target.queueUrls.etl,
        MessageBody: JSON.stringify(
          buildS3Notification({
            bucket: 'raw',
            key: missing,
            size: 1,
            eTag: 'e1',
            eventName: 'ObjectCreated:Put',
          }),
        ),
      }),
    );
    await waitFor(async () => (await dlqCounts('etl')).visible === 1, 30_000, 'the message in etl-dlq');
    const [listing] = JSON.parse(
      (await cli((o) => dlq.runDlqList(target, 'etl', { json: true }, o))).out,
    ) as { messages: { id: string; error: { name: string } }[] }[];
    const id = listing!.messages[0]!.id;
    expect(listing!.messages[0]!.error.name).toBe('NoSuchKey');
    const first = await failureRecordOf('etl', id);

    const { code, out } = await cli((o) => dlq.runDlqRedrive(target, 'etl', { all: true, json: true }, o));
    expect(code).toBe(0);
    expect(JSON.parse(out)).toMatchObject({
      method: 'move-task',
      moved: [{ id, summary: `s3://raw/${missing}` }],
      task: { status: 'COMPLETED', moved: 1, toMove: 1 },
    });
    // Back in etl, it fails three more times (its id kept by the move) and its record is rewritten.
    const again = await waitFor(
      async () => {
        const r = await failureRecordOf('etl', id);
        return r.lastFailureAt > first.lastFailureAt &&
          r.attempts === 3 &&
          (await dlqCounts('etl')).visible === 1
          ? r
          : undefined;
      },
      30_000,
      'the message dead-lettered again',
    );
    expect(again.firstAttemptAt > first.lastFailureAt).toBe(true);
    const text = await cli((o) => dlq.runDlqRedrive(target, 'etl', { all: true }, o));
    expect(text.out).toContain('message move task COMPLETED, 1 of 1 moved');
  });

  it('on the FIFO warehouse DLQ: the batch error is recorded for its messages, the group kept', async () => {
    // A lake object that is not Parquet: the warehouse batch fails as a whole, 5 times, then dead-letters.
    const junk = 'scratch/not-parquet.parquet';
    const junkETag = (
      await stack.runtime.s3.send(new PutObjectCommand({ Bucket: 'lake', Key: junk, Body: 'not parquet' }))
    ).ETag!.replace(/"/g, '');
    const now = new Date().toISOString();
    await stack.runtime.sqs.send(
      new SendMessageCommand({
        QueueUrl: target.queueUrls.warehouse,
        MessageGroupId: WAREHOUSE_GROUP,
        MessageDeduplicationId: 'dlq-test-junk',
        MessageBody: JSON.stringify({
          kind: 'data',
          table: 'readings',
          bucket: 'lake',
          key: junk,
          eTag: junkETag,
          rows: 1,
          sourceKey: 'plant-a/2024/03/04/junk.jsonl',
          sourceETag: 'j1',
          rawCreatedAt: now,
          enrichedAt: now,
        }),
      }),
    );
    await waitFor(async () => (await dlqCounts('warehouse')).visible === 1, 60_000, 'warehouse-dlq.fifo');
    const [listing] = JSON.parse(
      (await cli((o) => dlq.runDlqList(target, 'warehouse', { json: true }, o))).out,
    ) as {
      dlq: string;
      messages: { id: string; receives: number; failure: { attempts: number; function: string } }[];
    }[];
    expect(listing!.dlq).toBe('warehouse-dlq.fifo');
    const m = listing!.messages[0]!;
    expect(m).toMatchObject({
      about: `data s3://lake/${junk} (from plant-a/2024/03/04/junk.jsonl)`,
      receives: 5,
      failure: { attempts: 5, function: 'warehouse' },
    });

    // The cause goes (a gone lake object is skipped); sent back with its group, it loads nothing and passes.
    await stack.runtime.s3.send(new DeleteObjectCommand({ Bucket: 'lake', Key: junk }));
    const { code, out } = await cli((o) => dlq.runDlqRedrive(target, 'warehouse', { id: [m.id] }, o));
    expect(code).toBe(0);
    expect(out).toContain('warehouse-dlq.fifo → warehouse.fifo: 1 message moved');
    await waitFor(
      async () => (await stack.runtime.queueDepths()).warehouse === 0,
      30_000,
      'the warehouse queue drained',
    );
    expect(await dlqCounts('warehouse')).toEqual({ visible: 0, inFlight: 0 });
  });
});

describe('failure records', () => {
  const record = (id: string, receives: string): SQSRecord => ({
    messageId: id,
    receiptHandle: 'r',
    body: JSON.stringify(
      buildS3Notification({
        bucket: 'raw',
        key: 'plant-a/x.log',
        size: 1,
        eTag: 'abc',
        eventName: 'ObjectCreated:Put',
      }),
    ),
    attributes: {
      ApproximateReceiveCount: receives,
      SentTimestamp: String(Date.now() - 5_000),
      SenderId: 'test',
      ApproximateFirstReceiveTimestamp: String(Date.now() - 4_000),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:etl',
    awsRegion: 'us-east-1',
  });

  it('one per failed record, overwritten per attempt; a bad message is acknowledged without one', async () => {
    const { settleRecords } = await import('../../functions/core/sqs-batch.js');
    const { MessageFormatError } = await import('../../functions/core/errors.js');
    const boom = new Error('boom', { cause: new Error('underneath') });
    const results = await settleRecords(
      [record('m-1', '2'), record('m-2', '1')],
      2,
      async (r) => {
        if (r.messageId === 'm-2') throw new MessageFormatError(r.messageId, 'not a notification');
        throw boom;
      },
      'etl',
    );
    expect(results).toEqual([
      { status: 'rejected', reason: boom },
      { status: 'fulfilled', value: undefined },
    ]);
    expect(await failureRecordOf('etl', 'm-1')).toMatchObject({
      queue: 'etl',
      function: 'etl',
      messageId: 'm-1',
      attempts: 2,
      objects: [{ bucket: 'raw', key: 'plant-a/x.log', eTag: 'abc' }],
      error: { name: 'Error', message: 'boom', causes: ['Error: underneath'] },
    });
    expect(await stack.list('lake', failureKey('etl', 'm-2'))).toEqual([]);
  });

  it('a record that cannot be written changes nothing: the message still fails with its own error', async () => {
    const { settleRecords } = await import('../../functions/core/sqs-batch.js');
    const { s3 } = await import('../../functions/core/s3.js');
    const client = s3();
    const send = client.send.bind(client) as (...args: unknown[]) => Promise<unknown>;
    const failing = (command: { input?: { Key?: string } }, ...rest: unknown[]) =>
      command.input?.Key?.startsWith('failures/')
        ? Promise.reject(new Error('S3 is down'))
        : send(command, ...rest);
    const spy = vi.spyOn(client, 'send').mockImplementation(failing as unknown as typeof client.send);
    try {
      const boom = new Error('the real failure');
      const results = await settleRecords([record('m-3', '1')], 1, () => Promise.reject(boom), 'enrich');
      expect(results).toEqual([{ status: 'rejected', reason: boom }]);
      expect(spy).toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
    expect(await stack.list('lake', failureKey('enrich', 'm-3'))).toEqual([]);
  });
});
