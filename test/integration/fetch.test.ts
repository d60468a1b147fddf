import { mkdir, mkdtemp, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bunyan from 'bunyan';
import { FtpSrv } from 'ftp-srv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Factory, parseFactories } from '../../functions/contracts/factories.js';
import type { FetchDeps } from '../../functions/fetch/fetch-source.js';
import { FetchError } from '../../functions/fetch/remote.js';
import { joinLines, jsonlReadings, syslogLines } from '../../local/demo-data.js';
import { startHttpFileServer } from '../../local/http-file-server.js';
import { startSftpServer } from '../../local/sftp-server.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let stack: TestStack;
let remote: string;
// Loaded after the stack has set the environment (the functions read it once, at import).
let fetchSource: typeof import('../../functions/fetch/fetch-source.js').fetchSource;
const old = new Date('2024-05-06T07:00:00Z');

async function file(dir: string, name: string, body: string, mtime = old) {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, name), body);
  await utimes(join(dir, name), mtime, mtime);
}

function factoryWith(source: string): Factory {
  const config = parseFactories(
    `version: 1\nfactories:\n  remote:\n    name: Remote\n    sources:\n${source}`,
    'test.yaml',
  );
  return config.factories.get('remote')!;
}

function deps(extra: Partial<FetchDeps> = {}): FetchDeps {
  return {
    rawBucket: 'raw',
    stateBucket: 'lake',
    tmpDir: stack.data,
    secret: (name) => ({ SFTP_PASSWORD: 'pw', HTTP_TOKEN: 'tok', FTP_PASSWORD: 'ftppw' })[name],
    deadline: Number.POSITIVE_INFINITY,
    ...extra,
  };
}

beforeAll(async () => {
  stack = await startTestStack();
  ({ fetchSource } = await import('../../functions/fetch/fetch-source.js'));
  remote = await mkdtemp(join(stack.data, 'remote-'));
});
afterAll(async () => {
  await stack?.stop();
});

describe('SFTP source (in-process ssh2 server)', () => {
  let dir: string;
  let server: Awaited<ReturnType<typeof startSftpServer>>;
  const source = (extra = '') =>
    `      - { id: sftp-a, type: sftp, host: 127.0.0.1, port: PORT, user: plc, password: { secret: SFTP_PASSWORD }, dir: /outbox, glob: "*.log", recursive: true, minAgeSeconds: 60${extra} }\n`;
  beforeAll(async () => {
    dir = join(remote, 'sftp');
    await file(
      join(dir, 'outbox'),
      'press-1.log',
      joinLines(syslogLines({ seed: 1, lines: 50, start: old })),
    );
    await file(
      join(dir, 'outbox', 'line 2'),
      'press-2.log',
      joinLines(syslogLines({ seed: 2, lines: 30, start: old })),
    );
    await file(join(dir, 'outbox'), 'ignored.txt', 'not matched by the glob\n');
    server = await startSftpServer({ root: dir, port: 0, user: 'plc', password: 'pw' });
  });
  afterAll(async () => {
    await server?.close();
  });
  const factory = (extra = '') => factoryWith(source(extra).replace('PORT', String(server.port)));

  it('fetches new files into raw/<factory>/<yyyy>/<mm>/<dd>/ with provenance, and nothing on a second run', async () => {
    const first = await fetchSource(factory(), factory().sources[0]!, deps());
    expect(first.fetched.sort()).toEqual([
      'remote/2024/05/06/line 2/press-2.log',
      'remote/2024/05/06/press-1.log',
    ]);
    const head = await stack.runtime.s3.send(
      new (await import('@aws-sdk/client-s3')).HeadObjectCommand({
        Bucket: 'raw',
        Key: 'remote/2024/05/06/press-1.log',
      }),
    );
    expect(head.Metadata).toMatchObject({
      source: 'remote/sftp-a',
      'remote-path': 'press-1.log',
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    const second = await fetchSource(factory(), factory().sources[0]!, deps());
    expect(second).toMatchObject({ fetched: [], alreadyFetched: 2, duplicates: 0 });
  });

  it('recognises the same content under a new name by sha256, and leaves files still being written', async () => {
    await file(
      join(dir, 'outbox'),
      'press-1-copy.log',
      joinLines(syslogLines({ seed: 1, lines: 50, start: old })),
    );
    await file(join(dir, 'outbox'), 'growing.log', 'still being written\n', new Date());
    const run = await fetchSource(factory(), factory().sources[0]!, deps());
    expect(run).toMatchObject({ fetched: [], duplicates: 1, unstable: 1 });
  });

  it('an interrupted transfer leaves no object and fails the run for a retry', async () => {
    const cut = await startSftpServer({
      root: dir,
      port: 0,
      user: 'plc',
      password: 'pw',
      cutAfterBytes: 1000,
    });
    await file(join(dir, 'outbox'), 'big.log', joinLines(syslogLines({ seed: 9, lines: 500, start: old })));
    const f = factoryWith(source().replace('PORT', String(cut.port)).replace('sftp-a', 'sftp-cut'));
    await expect(fetchSource(f, f.sources[0]!, deps())).rejects.toMatchObject({ kind: 'transfer' });
    expect(await stack.list('raw', 'remote/2024/05/06/big.log')).toEqual([]);
    await cut.close();
  });

  it('a wrong password or a host key that does not match the pin is an auth error', async () => {
    const bad = factory();
    await expect(fetchSource(bad, bad.sources[0]!, deps({ secret: () => 'wrong' }))).rejects.toMatchObject({
      kind: 'auth',
    });
    const pinned = factory(', hostKey: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"');
    const err = await fetchSource(pinned, pinned.sources[0]!, deps()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FetchError);
    expect(err).toMatchObject({
      kind: 'auth',
      message: expect.stringContaining(`host key ${server.hostKeyFingerprint} does not match`),
    });
    const good = factory(`, hostKey: "${server.hostKeyFingerprint}"`);
    await expect(fetchSource(good, good.sources[0]!, deps())).resolves.toMatchObject({
      source: 'remote/sftp-a',
    });
  });

  it('an unreachable host is an unreachable error', async () => {
    const f = factoryWith(source().replace('PORT', '1'));
    await expect(fetchSource(f, f.sources[0]!, deps())).rejects.toMatchObject({ kind: 'unreachable' });
  });
});

describe('FTP source (ftp-srv)', () => {
  it('fetches recursively and can delete after fetching', async () => {
    const dir = join(remote, 'ftp');
    await file(join(dir, 'logs'), 'a.jsonl', joinLines(jsonlReadings({ seed: 3, lines: 20, start: old })));
    await file(
      join(dir, 'logs', 'sub'),
      'b.jsonl',
      joinLines(jsonlReadings({ seed: 4, lines: 20, start: old })),
    );
    const ftp = new FtpSrv({
      url: 'ftp://127.0.0.1:12121',
      pasv_url: '127.0.0.1',
      pasv_min: 12122,
      pasv_max: 12140,
      log: bunyan.createLogger({ name: 'ftp', level: 'fatal' }),
    });
    ftp.on('login', ({ username, password }, resolve, reject) =>
      username === 'plant' && password === 'ftppw' ? resolve({ root: dir }) : reject(new Error('bad login')),
    );
    await ftp.listen();
    try {
      const f = factoryWith(
        '      - { id: ftp-a, type: ftp, host: 127.0.0.1, port: 12121, user: plant, password: { secret: FTP_PASSWORD }, dir: /logs, glob: "**/*.jsonl", recursive: true, afterFetch: delete }\n',
      );
      const run = await fetchSource(f, f.sources[0]!, deps());
      expect(run.fetched.sort()).toEqual(['remote/2024/05/06/a.jsonl', 'remote/2024/05/06/sub/b.jsonl']);
      const { readdir } = await import('node:fs/promises');
      expect(await readdir(join(dir, 'logs'))).toEqual(['sub']);
    } finally {
      await ftp.close();
    }
  });
});

describe('HTTP source', () => {
  it('pages through the listing with a bearer token and fetches every file', async () => {
    const dir = join(remote, 'http');
    for (let i = 0; i < 5; i++)
      await file(dir, `hist-${i}.jsonl`, joinLines(jsonlReadings({ seed: 10 + i, lines: 10, start: old })));
    const server = await startHttpFileServer({ root: dir, port: 0, token: 'tok', pageSize: 2 });
    try {
      const f = factoryWith(
        `      - { id: hist, type: http, url: "${server.url}", token: { secret: HTTP_TOKEN }, sinceParam: since }\n`,
      );
      const run = await fetchSource(f, f.sources[0]!, deps());
      expect(run.fetched).toHaveLength(5);
      expect(await fetchSource(f, f.sources[0]!, deps())).toMatchObject({ fetched: [] });
      await expect(fetchSource(f, f.sources[0]!, deps({ secret: () => 'nope' }))).rejects.toMatchObject({
        kind: 'auth',
      });
    } finally {
      await server.close();
    }
  });

  it('a download cut off mid-way leaves no object', async () => {
    const dir = join(remote, 'http-cut');
    await file(dir, 'big.jsonl', joinLines(jsonlReadings({ seed: 20, lines: 2000, start: old })));
    const server = await startHttpFileServer({ root: dir, port: 0, token: 'tok', cutAfterBytes: 5000 });
    try {
      const f = factoryWith(
        `      - { id: hist-cut, type: http, url: "${server.url}", token: { secret: HTTP_TOKEN } }\n`,
      );
      await expect(fetchSource(f, f.sources[0]!, deps())).rejects.toMatchObject({ kind: 'transfer' });
      expect(await stack.list('raw', 'remote/2024/05/06/big.jsonl')).toEqual([]);
    } finally {
      await server.close();
    }
  });
});

describe('time budget', () => {
  it('stops at the deadline and reports a continuation', async () => {
    const dir = join(remote, 'budget');
    await file(dir, 'x.jsonl', '{"a":1}\n');
    const server = await startHttpFileServer({ root: dir, port: 0, token: 'tok' });
    try {
      const f = factoryWith(
        `      - { id: budget, type: http, url: "${server.url}", token: { secret: HTTP_TOKEN } }\n`,
      );
      const run = await fetchSource(f, f.sources[0]!, deps({ deadline: Date.now() - 1 }));
      expect(run).toMatchObject({ fetched: [], continued: true });
    } finally {
      await server.close();
    }
  });
});
