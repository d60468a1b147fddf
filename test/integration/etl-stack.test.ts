import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildS3Notification } from '../../functions/core/s3-event.js';
import { joinLines, jsonlReadings } from '../../local/demo-data.js';
import { dlqUrl } from '../../local/resources.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack();
});
afterAll(async () => {
  await stack?.stop();
});

const day = 'plant-a/2024/01/02';

describe('raw upload → normalized Parquet (embedded S3 + SQS)', () => {
  it('an upload with @aws-sdk/client-s3 becomes Parquet whose rows DuckDB reads back', async () => {
    const key = `${day}/sensors with space+plus.jsonl`;
    const body = joinLines(
      jsonlReadings({ seed: 1, lines: 500, start: new Date('2024-01-02T00:00:00Z'), badEvery: 100 }),
    );
    const eTag = await stack.put(key, body);
    const m = await stack.waitForManifest(key, eTag);
    expect(m).toMatchObject({
      status: 'loaded',
      format: 'jsonl',
      lines: { total: 500, loaded: 495, rejected: 5 },
    });
    const readings = m.outputs.filter((k) =>
      k.startsWith('normalized/readings/factory=plant-a/month=2024-01/'),
    );
    expect(readings).toHaveLength(1);
    const rows = await stack.queryParquet(
      readings,
      (f) => `SELECT count(*) AS n, count(DISTINCT source_line) AS lines, min(source_key) AS k FROM ${f}`,
    );
    expect(rows).toEqual([{ n: '495', lines: '495', k: key }]);
    const rejects = m.outputs.filter((k) => k.startsWith('quarantine/rejects/'));
    const rej = await stack.queryParquet(
      rejects,
      (f) => `SELECT source_line, reason FROM ${f} ORDER BY source_line LIMIT 2`,
    );
    expect(rej).toEqual([
      { source_line: '100', reason: 'invalid JSON' },
      { source_line: '200', reason: 'ts: cannot parse timestamp "not a time"' },
    ]);
  });

  it('a file larger than a batch streams through in batches: every line accounted, one output per batch', async () => {
    // ≈ 40 MB of text: two 32 MB batches; gzip keeps the upload small.
    const key = `${day}/big.jsonl.gz`;
    const lines = 400_000;
    const body = gzipSync(
      joinLines(
        jsonlReadings({
          seed: 7,
          lines,
          start: new Date('2024-01-02T00:00:00Z'),
          stepMs: 100,
          badEvery: 50_000,
        }),
      ),
    );
    const eTag = await stack.put(key, body);
    const m = await stack.waitForManifest(key, eTag, 60_000);
    expect(m).toMatchObject({ status: 'loaded', gzip: true, lines: { total: lines, rejected: 8 } });
    expect(m.lines.loaded + m.lines.rejected + m.lines.blank + m.lines.header).toBe(lines);
    const readings = m.outputs.filter((k) => k.startsWith('normalized/readings/'));
    expect(readings.map((k) => k.replace(/.*\//, '').replace(/^[0-9a-f]{24}/, '<id>'))).toEqual([
      '<id>.parquet',
      '<id>-1.parquet',
    ]);
    const rows = await stack.queryParquet(
      readings,
      (f) => `SELECT count(*) AS n, count(DISTINCT source_line) AS lines, max(source_line) AS last FROM ${f}`,
    );
    // Every loaded line once; the last line (400,000) is one of the broken ones.
    expect(rows).toEqual([
      { n: String(m.lines.loaded), lines: String(m.lines.loaded), last: String(lines - 1) },
    ]);
  });

  it('a run still going at the deadline is stopped: DuckDB interrupted, no output, no manifest, work folder gone', async () => {
    // Not in the raw bucket: the stack's own ETL must not pick it up; this test runs the ETL itself.
    const key = 'deadline/2024/01/02/slow.jsonl.gz';
    const body = gzipSync(
      joinLines(jsonlReadings({ seed: 3, lines: 300_000, start: new Date('2024-01-02T00:00:00Z') })),
    );
    const eTag = await stack.put(key, body, 'lake');
    const { etlObject } = await import('../../functions/etl/etl-object.js');
    const { parseFactories } = await import('../../functions/contracts/factories.js');
    const { openDuckDB } = await import('../../functions/core/duckdb.js');
    const { DeadlineError } = await import('../../functions/core/errors.js');
    const tmpDir = await mkdtemp(join(tmpdir(), 'etl-deadline-'));
    const started = Date.now();
    const run = etlObject(
      { bucket: 'lake', key, eTag, size: body.length, eventName: 'ObjectCreated:Put' },
      {
        factories: parseFactories('version: 1\nfactories: {}\n', 'test.yaml'),
        db: await openDuckDB(),
        lakeBucket: 'lake',
        tmpDir,
        maxLineBytes: 1 << 20,
        signal: AbortSignal.timeout(300),
      },
    );
    await expect(run).rejects.toBeInstanceOf(DeadlineError);
    await expect(run).rejects.toThrow(/at the function's time limit; it will be retried/);
    // It stopped soon after the deadline, not at the end of the work.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await readdir(tmpDir)).toEqual([]);
    expect(await stack.list('lake', 'manifests/factory=deadline/')).toEqual([]);
    expect(await stack.list('lake', 'normalized/readings/factory=deadline/')).toEqual([]);
    await rm(tmpDir, { recursive: true, force: true });
  });

  it('a gzip upload is decompressed transparently', async () => {
    const key = `${day}/line.csv.gz`;
    const eTag = await stack.put(
      key,
      gzipSync('timestamp,machine,temp\n2024-01-02T10:00:00Z,m1,20\n2024-01-02T10:01:00Z,m1,21\n'),
    );
    const m = await stack.waitForManifest(key, eTag);
    expect(m).toMatchObject({
      status: 'loaded',
      gzip: true,
      format: 'csv',
      rows: { readings: 2 },
      lines: { header: 1, loaded: 2 },
    });
  });

  it('the same notification delivered twice gives the same outputs and no extra rows', async () => {
    const key = `${day}/dup.jsonl`;
    const eTag = await stack.put(
      key,
      joinLines(jsonlReadings({ seed: 2, lines: 50, start: new Date('2024-01-02T00:00:00Z') })),
    );
    const first = await stack.waitForManifest(key, eTag);
    // Let enrichment and the warehouse finish with it, so the lake is settled.
    await stack.waitForWarehouse([key]);
    const before = await stack.list('lake');
    const body = JSON.stringify(
      buildS3Notification({ bucket: 'raw', key, size: 1, eTag, eventName: 'ObjectCreated:Put' }),
    );
    for (let i = 0; i < 2; i++) {
      await stack.runtime.sqs.send(
        new SendMessageCommand({ QueueUrl: stack.runtime.queueUrls.etl, MessageBody: body }),
      );
    }
    await waitFor(async () => (await stack.runtime.queueDepths()).etl === 0, 20_000, 'etl queue drained');
    await waitFor(
      async () => {
        const d = await stack.runtime.queueDepths();
        return d.enrich === 0 && d.warehouse === 0;
      },
      20_000,
      'enrich and warehouse queues drained',
    );
    const after = await stack.list('lake');
    expect(after).toEqual(before);
    expect(
      await stack.queryWarehouse(`SELECT count(*) AS n FROM readings WHERE source_key = '${key}'`),
    ).toEqual([{ n: '50' }]);
    const again = await stack.waitForManifest(key, eTag);
    expect(again.finishedAt).toBe(first.finishedAt);
    const rows = await stack.queryParquet(
      first.outputs.filter((k) => k.startsWith('normalized/')),
      (f) => `SELECT count(*) AS n FROM ${f}`,
    );
    expect(rows).toEqual([{ n: '50' }]);
  });

  it('a new version of a key replaces the outputs of the old one', async () => {
    const key = `${day}/versioned.jsonl`;
    const v1 = await stack.put(key, '{"ts":"2024-01-02T10:00:00Z","device":"d","metric":"m","value":1}\n');
    const m1 = await stack.waitForManifest(key, v1);
    const v2 = await stack.put(key, '{"ts":"2024-01-03T10:00:00Z","device":"d","metric":"m","value":2}\n');
    const m2 = await stack.waitForManifest(key, v2);
    expect(m2.outputs).not.toEqual(m1.outputs);
    const lake = new Set((await stack.list('lake')).map((o) => o.key));
    for (const k of m1.outputs) expect(lake.has(k)).toBe(false);
    for (const k of m2.outputs) expect(lake.has(k)).toBe(true);
  });

  it.each([
    ['an empty object', 'empty.log', Buffer.alloc(0), 'empty-object'],
    [
      'a binary object',
      'image.png',
      Buffer.concat([
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d]),
        Buffer.alloc(64, 7),
      ]),
      'binary-object',
    ],
    [
      'a corrupt gzip',
      'broken.log.gz',
      Buffer.concat([gzipSync('a\n'.repeat(1000)).subarray(0, 30), Buffer.from('garbage')]),
      'corrupt-gzip',
    ],
  ])('%s is quarantined whole with its reason, and acknowledged', async (_name, file, body, code) => {
    const key = `${day}/${file}`;
    const eTag = await stack.put(key, body);
    const m = await stack.waitForManifest(key, eTag);
    expect(m).toMatchObject({ status: 'quarantined', quarantine: { code } });
    const record = JSON.parse(await stack.getText('lake', m.outputs[0]!));
    expect(record).toMatchObject({
      bucket: 'raw',
      key,
      code,
      reason: expect.stringContaining(`s3://raw/${key}: `),
    });
    // The raw object is kept where it was.
    expect((await stack.list('raw', key)).map((o) => o.key)).toEqual([key]);
    await waitFor(async () => (await stack.runtime.queueDepths()).etl === 0, 10_000, 'etl queue drained');
    expect((await stack.runtime.queueDepths())['etl-dlq']).toBe(0);
  });

  it('a Java stack trace is one event with all its lines; the accounting counts every line', async () => {
    const key = 'demo/2024/01/02/service-mes.log';
    const body = [
      '2024-01-02 10:00:00,123 INFO [main] com.acme.mes.App - started',
      '2024-01-02 10:00:01,000 ERROR [pool-1] com.acme.mes.Io - E2001 write failed',
      'java.lang.IllegalStateException: boom',
      '\tat com.acme.mes.Io.write(Io.java:10)',
      'Caused by: java.io.IOException: disk full',
      '\t... 5 more',
      '',
      '2024-01-02 10:00:02,000 WARN [main] com.acme.mes.App - slow',
    ].join('\n');
    const eTag = await stack.put(key, body);
    const m = await stack.waitForManifest(key, eTag);
    expect(m).toMatchObject({
      status: 'loaded',
      format: 'template',
      lines: { total: 8, loaded: 7, rejected: 0, blank: 1, header: 0 },
      rows: { events: 3 },
      multilineRecords: 1,
    });
    const events = await stack.queryParquet(
      m.outputs.filter((k) => k.startsWith('normalized/events/')),
      (f) =>
        `SELECT source_line, source_lines, device, severity_raw, code, message FROM ${f} ORDER BY source_line`,
    );
    expect(events).toEqual([
      {
        source_line: '1',
        source_lines: 1,
        device: 'mes',
        severity_raw: 'INFO',
        code: null,
        message: 'started',
      },
      {
        source_line: '2',
        source_lines: 5,
        device: 'mes',
        severity_raw: 'ERROR',
        code: 'E2001',
        message:
          'E2001 write failed\njava.lang.IllegalStateException: boom\n\tat com.acme.mes.Io.write(Io.java:10)\nCaused by: java.io.IOException: disk full\n\t... 5 more',
      },
      { source_line: '8', source_lines: 1, device: 'mes', severity_raw: 'WARN', code: null, message: 'slow' },
    ]);
  });

  it('invalid UTF-8, over-long and unparsable lines become rejects; every line is accounted for', async () => {
    const key = `${day}/mixed.jsonl`;
    const good = '{"ts":"2024-01-02T10:00:00Z","device":"d","metric":"m","value":1}';
    const body = Buffer.concat([
      Buffer.from(`${good}\n`),
      Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]),
      Buffer.from(`{"x":"${'y'.repeat(2 * 1024 * 1024)}"}\n`),
      Buffer.from('nonsense\n\n'),
      Buffer.from(`${good}\n`),
    ]);
    const eTag = await stack.put(key, body);
    const m = await stack.waitForManifest(key, eTag);
    expect(m.lines).toEqual({ total: 6, loaded: 2, rejected: 3, blank: 1, header: 0 });
    // 3 of the 5 lines that are not blank: over the default limits.maxRejectRatio of 50%.
    expect(m.warnings).toEqual([
      'rejected 3 of 5 lines (60%), over limits.maxRejectRatio 50%: check the rule for this file',
    ]);
    const rej = await stack.queryParquet(
      m.outputs.filter((k) => k.startsWith('quarantine/')),
      (f) => `SELECT source_line, reason FROM ${f} ORDER BY 1`,
    );
    expect(rej.map((r) => r.source_line)).toEqual(['2', '3', '4']);
    expect(rej[0]!.reason).toMatch(/invalid UTF-8/);
    expect(rej[1]!.reason).toMatch(/over the 1048576-byte limit/);
  });
});

describe('retries and dead letters', () => {
  it('a record that keeps failing is retried, then moved to the DLQ', async () => {
    const body = JSON.stringify(
      buildS3Notification({
        bucket: 'raw',
        key: `${day}/does-not-exist.log`,
        size: 1,
        eTag: 'x',
        eventName: 'ObjectCreated:Put',
      }),
    );
    await stack.runtime.sqs.send(
      new SendMessageCommand({ QueueUrl: stack.runtime.queueUrls.etl, MessageBody: body }),
    );
    const dlq = await dlqUrl(stack.runtime.sqs, 'etl');
    const msg = await waitFor(
      async () =>
        (
          await stack.runtime.sqs.send(
            new ReceiveMessageCommand({
              QueueUrl: dlq,
              MaxNumberOfMessages: 1,
              MessageSystemAttributeNames: ['All'],
            }),
          )
        ).Messages?.[0],
      30_000,
      'message in the DLQ',
    );
    expect(JSON.parse(msg.Body!)).toEqual(JSON.parse(body));
    expect(Number(msg.Attributes?.ApproximateReceiveCount)).toBeGreaterThanOrEqual(1);
  });

  it('a message that is not an S3 notification is acknowledged, not retried', async () => {
    await stack.runtime.sqs.send(
      new SendMessageCommand({ QueueUrl: stack.runtime.queueUrls.etl, MessageBody: '{"hello":"world"}' }),
    );
    await waitFor(async () => (await stack.runtime.queueDepths()).etl === 0, 10_000, 'etl queue drained');
    expect((await stack.runtime.queueDepths())['etl-dlq']).toBe(1); // only the one from the test above
  });
});

describe('runtime HTTP API', () => {
  it('GET /health is 200 with every part up, and the last reconciler report', async () => {
    await stack.runtime.reconciler.runOnce();
    const res = await fetch(`${stack.runtime.url}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      status: 'ok',
      parts: {
        s3: 'up',
        sqs: 'up',
        'function:fetch': 'up',
        'function:etl': 'up',
        'function:enrich': 'up',
        'function:warehouse': 'up',
        reconciler: 'up',
      },
      reconciler: { checked: { raw: expect.any(Number) }, reemitted: {} },
    });
  });

  it('the Lambda Invoke API runs a function with an event', async () => {
    const key = `${day}/invoke.jsonl`;
    const eTag = await stack.put(key, '{"ts":"2024-01-02T10:00:00Z","device":"d","metric":"m","value":1}\n');
    await stack.waitForManifest(key, eTag);
    const event = {
      Records: [
        {
          messageId: 'm-1',
          body: JSON.stringify(
            buildS3Notification({ bucket: 'raw', key, size: 1, eTag, eventName: 'ObjectCreated:Put' }),
          ),
        },
      ],
    };
    const res = await fetch(`${stack.runtime.url}/2015-03-31/functions/etl/invocations`, {
      method: 'POST',
      body: JSON.stringify(event),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ batchItemFailures: [] });
    // No token configured: open on loopback, but not to a web page (a browser sends Origin).
    const fromPage = await fetch(`${stack.runtime.url}/2015-03-31/functions/etl/invocations`, {
      method: 'POST',
      body: JSON.stringify(event),
      headers: { origin: 'https://example.com' },
    });
    expect(fromPage.status).toBe(403);
    const missing = await fetch(`${stack.runtime.url}/2015-03-31/functions/nope/invocations`, {
      method: 'POST',
      body: '{}',
    });
    expect(missing.status).toBe(404);
  });

  it('GET /metrics serves Prometheus text with the ETL counters', async () => {
    const text = await (await fetch(`${stack.runtime.url}/metrics`)).text();
    expect(text).toMatch(
      /telemetry_pipeline_files_total\{stage="etl",factory="plant-a",outcome="loaded"\} \d+/,
    );
    expect(text).toMatch(/telemetry_pipeline_queue_messages\{queue="etl-dlq"\} 1/);
    expect(text).toMatch(/telemetry_pipeline_files_over_reject_ratio_total\{factory="plant-a"\} [1-9]/);
  });
});
