import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { joinLines, jsonlReadings, syslogLines } from '../../local/demo-data.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const SSHD = '/usr/sbin/sshd';
const PORT = 12022;
let stack: TestStack;
let sshd: ChildProcess | undefined;
let home: string;
let outbox: string;
let configDir: string;
let fingerprint: string;
let fetchSource: typeof import('../../functions/fetch/fetch-source.js').fetchSource;
let loadFactories: typeof import('../../functions/contracts/factories.js').loadFactories;

async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

beforeAll(async () => {
  if (!existsSync(SSHD))
    throw new Error(
      `${SSHD} not found: install Debian's openssh-server (apt-get install openssh-server), as .ci/run does`,
    );
  stack = await startTestStack();
  home = join(stack.data, 'ssh');
  outbox = join(home, 'outbox');
  await mkdir(outbox, { recursive: true });
  await mkdir('/run/sshd', { recursive: true }); // sshd's privilege separation directory
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(home, 'host_key')]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(home, 'user_key')]);
  await writeFile(join(home, 'authorized_keys'), execFileSync('cat', [join(home, 'user_key.pub')]));
  fingerprint = execFileSync('ssh-keygen', ['-lf', join(home, 'host_key.pub')])
    .toString()
    .split(' ')[1]!;
  await writeFile(
    join(home, 'sshd_config'),
    [
      `Port ${PORT}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(home, 'host_key')}`,
      `PidFile ${join(home, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(home, 'authorized_keys')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      'UsePAM no',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
  sshd = spawn(SSHD, ['-D', '-e', '-f', join(home, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  sshd.stderr!.on('data', (d) => {
    stderr += d;
  });
  await waitFor(async () => portOpen(PORT), 10_000, `sshd on port ${PORT} (${stderr})`);

  // A factory whose SFTP source is this sshd, key pinned, secret by name.
  configDir = join(stack.data, 'config');
  await mkdir(configDir, { recursive: true });
  await writeFile(
    join(configDir, 'factories.yaml'),
    `version: 1
factories:
  plant-ssh:
    name: Plant behind OpenSSH
    timezone: UTC
    sources:
      - id: controller
        type: sftp
        host: 127.0.0.1
        port: ${PORT}
        user: ${userInfo().username}
        privateKey: { secret: PLANT_SSH_KEY }
        hostKey: "${fingerprint}"
        dir: ${outbox}
        glob: "*.{log,jsonl}"
        minAgeSeconds: 0
`,
  );
  process.env.PLANT_SSH_KEY = execFileSync('cat', [join(home, 'user_key')]).toString();
  ({ fetchSource } = await import('../../functions/fetch/fetch-source.js'));
  ({ loadFactories } = await import('../../functions/contracts/factories.js'));
});

afterAll(async () => {
  sshd?.kill('SIGTERM');
  await stack?.stop();
});

function deps() {
  return {
    rawBucket: 'raw',
    stateBucket: 'lake',
    tmpDir: stack.data,
    secret: (n: string) => process.env[n],
    deadline: Number.POSITIVE_INFINITY,
  };
}

describe('fetch from a real OpenSSH server', () => {
  it('delivers files through ETL and enrichment into the warehouse; a second fetch adds nothing', async () => {
    const start = new Date('2024-06-01T10:00:00Z');
    await writeFile(join(outbox, 'press-01.log'), joinLines(syslogLines({ seed: 5, lines: 120, start })));
    await writeFile(join(outbox, 'sensors.jsonl'), joinLines(jsonlReadings({ seed: 6, lines: 300, start })));
    const factory = loadFactories(configDir).factories.get('plant-ssh')!;
    const first = await fetchSource(factory, factory.sources[0]!, deps());
    expect(first.fetched).toHaveLength(2);
    await stack.waitForWarehouse(first.fetched);
    const rows = await stack.queryWarehouse(
      `SELECT (SELECT count(*) FROM events WHERE factory = 'plant-ssh') AS events, (SELECT count(*) FROM readings WHERE factory = 'plant-ssh') AS readings`,
    );
    // This factory's devices are not in the registry: kept, with empty enrichment columns.
    expect(rows).toEqual([{ events: '120', readings: '300' }]);
    const second = await fetchSource(factory, factory.sources[0]!, deps());
    expect(second).toMatchObject({ fetched: [], alreadyFetched: 2 });
  });

  it('killing a fetch mid-transfer leaves no partial object; the next run delivers the file once', async () => {
    // ~60 MB, so the transfer is surely under way when the fetch process is killed.
    const big = joinLines(
      jsonlReadings({ seed: 7, lines: 600_000, start: new Date('2024-06-01T00:00:00Z'), stepMs: 10 }),
    );
    await writeFile(join(outbox, 'big.jsonl'), big);
    const tmp = join(stack.data, 'fetch-cli-tmp');
    await mkdir(tmp, { recursive: true });
    const child = spawn(
      process.execPath,
      ['bin/telemetry-pipeline.mjs', 'fetch', 'plant-ssh', '--config', configDir],
      {
        env: {
          ...process.env,
          S3_ENDPOINT: stack.runtime.settings.s3Endpoint,
          SQS_ENDPOINT: stack.runtime.settings.sqsEndpoint,
          PIPELINE_TMP: tmp,
        },
        stdio: 'ignore',
      },
    );
    const downloading = async () => {
      for (const d of await readdir(tmp).catch(() => [] as string[])) {
        const s = await stat(join(tmp, d, 'file')).catch(() => undefined);
        if (s && s.size > 1_000_000) return true;
      }
      return false;
    };
    await waitFor(downloading, 30_000, 'the download to start');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(await stack.list('raw', 'plant-ssh/')).toHaveLength(2); // the two from the test above, no third
    const factory = loadFactories(configDir).factories.get('plant-ssh')!;
    const retry = await fetchSource(factory, factory.sources[0]!, deps());
    expect(retry.fetched).toEqual([expect.stringMatching(/^plant-ssh\/\d{4}\/\d{2}\/\d{2}\/big\.jsonl$/)]);
    const head = await stack.list('raw', retry.fetched[0]);
    expect(head).toHaveLength(1);
  });
});
