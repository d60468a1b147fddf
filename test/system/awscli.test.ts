import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { joinLines, jsonlReadings } from '../../local/demo-data.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const run = promisify(execFile);
/** Debian's awscli (v2). A pip-installed `aws` earlier on PATH may be another major version. */
const AWS = '/usr/bin/aws';

let stack: TestStack;
beforeAll(async () => {
  if (!existsSync(AWS))
    throw new Error(`${AWS} not found: install Debian's awscli (apt-get install awscli), as .ci/run does`);
  stack = await startTestStack();
});
afterAll(async () => {
  await stack?.stop();
});

function aws(args: string[]) {
  return run(AWS, args, {
    env: {
      ...process.env,
      AWS_ACCESS_KEY_ID: 'minioadmin',
      AWS_SECRET_ACCESS_KEY: 'minioadmin',
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_PAGER: '',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    },
    maxBuffer: 16 * 1024 * 1024,
  });
}

describe('the AWS CLI against the embedded stack', () => {
  it('aws s3 cp of a 100,000-line JSONL file gives Parquet with loaded + rejected = 100,000', async () => {
    const file = join(stack.data, 'big.jsonl');
    await writeFile(
      file,
      joinLines(
        jsonlReadings({
          seed: 42,
          lines: 100_000,
          start: new Date('2024-01-02T00:00:00Z'),
          stepMs: 100,
          badEvery: 1000,
        }),
      ),
    );
    const key = 'plant-cli/2024/01/02/big file.jsonl';
    const started = Date.now();
    await aws([
      '--endpoint-url',
      stack.runtime.settings.s3Endpoint,
      's3',
      'cp',
      '--only-show-errors',
      file,
      `s3://raw/${key}`,
    ]);
    const m = await stack.waitForManifest(key, undefined, 60_000);
    const seconds = (Date.now() - started) / 1000;
    expect(m.lines.loaded + m.lines.rejected).toBe(100_000);
    expect(m.lines).toMatchObject({ loaded: 99_900, rejected: 100 });
    const rows = await stack.queryParquet(
      m.outputs.filter((k) => k.startsWith('normalized/')),
      (f) => `SELECT count(*) AS n FROM ${f}`,
    );
    expect(rows).toEqual([{ n: '99900' }]);
    // Reported, not asserted: speed lives in the benchmark.
    process.stdout.write(
      `aws s3 cp → manifest for 100,000 lines: ${seconds.toFixed(2)} s (ETL ${m.seconds} s)\n`,
    );
  });

  it('aws s3 ls shows the lake; aws lambda invoke calls the local Invoke API', async () => {
    const { stdout } = await aws([
      '--endpoint-url',
      stack.runtime.settings.s3Endpoint,
      's3',
      'ls',
      '--recursive',
      's3://lake/manifests/',
    ]);
    expect(stdout).toMatch(/manifests\/factory=plant-cli\//);
    const out = join(stack.data, 'invoke-out.json');
    await aws([
      'lambda',
      'invoke',
      '--endpoint-url',
      stack.runtime.url,
      '--function-name',
      'etl',
      '--cli-binary-format',
      'raw-in-base64-out',
      '--payload',
      'file://events/sqs-s3-test-event.json',
      out,
    ]);
    const { readFile } = await import('node:fs/promises');
    expect(JSON.parse(await readFile(out, 'utf8'))).toEqual({ batchItemFailures: [] });
  });
});
