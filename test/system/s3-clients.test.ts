import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type S3Emulator, startS3Emulator } from '../../local/s3-emulator/index.js';

const run = promisify(execFile);
const credentials = { accessKeyId: 'clients-key', secretAccessKey: 'clients-secret' };
const region = 'us-east-1';
const MB = 1024 * 1024;

/** Debian's clients, by absolute path: a pip-installed `aws` earlier on PATH may be another version. */
const CLIENTS = {
  aws: { path: '/usr/bin/aws', debianPackage: 'awscli' },
  rclone: { path: '/usr/bin/rclone', debianPackage: 'rclone' },
  s3cmd: { path: '/usr/bin/s3cmd', debianPackage: 's3cmd' },
};

function requireClient(name: keyof typeof CLIENTS) {
  const { path, debianPackage } = CLIENTS[name];
  if (!existsSync(path)) {
    throw new Error(
      `${path} not found: install Debian's ${debianPackage} (apt-get install ${debianPackage})`,
    );
  }
}

let root: string;
let emulator: S3Emulator;
/** A folder of a few hundred files (names with spaces, `+`, unicode; one of 12 MB, uploaded in parts). */
let folder: string;
/** The 5,000 keys of bucket `many`, in a layout like the lake's. */
const TOPS = ['manifests', 'normalized', 'rejected', 'warehouse'];
const ROOT_KEYS = ['README.txt', 'top level + plus.txt'];
const keys = [
  ...ROOT_KEYS,
  ...Array.from(
    { length: 5000 - ROOT_KEYS.length },
    (_, i) =>
      `${TOPS[i % 4]}/factory=f${i % 7}/date=2026-01-${String(1 + (i % 28)).padStart(2, '0')}/part-${i}.parquet`,
  ),
];

/**
 * The environment of a client process: this one's, less any AWS_* setting (a CA bundle, a profile)
 * that would reconfigure the client, plus `extra`.
 */
function clientEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('AWS_')));
  return { ...env, ...extra };
}

function byteOrder(a: string, b: string) {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

async function md5File(path: string): Promise<string> {
  return createHash('md5')
    .update(await readFile(path))
    .digest('hex');
}

/** Relative path → MD5 of every file under `dir`. */
async function tree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile())
      out.set(join(e.parentPath, e.name).slice(dir.length + 1), await md5File(join(e.parentPath, e.name)));
  }
  return out;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 's3-clients-'));
  emulator = await startS3Emulator({ dir: join(root, 'data'), port: 0, credentials, region });
  const s3 = new S3Client({ endpoint: emulator.url, region, credentials, forcePathStyle: true });
  for (const Bucket of ['many', 'tree']) await s3.send(new CreateBucketCommand({ Bucket }));
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < keys.length) {
        const Key = keys[next++]!;
        await s3.send(new PutObjectCommand({ Bucket: 'many', Key, Body: Key }));
      }
    }),
  );
  s3.destroy();

  folder = join(root, 'folder');
  for (let i = 0; i < 300; i++) {
    const path = join(folder, `dir ${i % 10}`, `sub+${i % 3}`, `file ${i} é.txt`);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, randomBytes(1 + ((i * 7919) % 20_000)));
  }
  await writeFile(join(folder, 'big.bin'), randomBytes(12 * MB));
}, 120_000);

afterAll(async () => {
  await emulator?.stop();
  await rm(root, { recursive: true, force: true });
});

describe('the AWS CLI (awscli)', () => {
  beforeAll(() => requireClient('aws'));

  function aws(args: string[]) {
    return run(CLIENTS.aws.path, ['--endpoint-url', emulator.url, ...args], {
      env: clientEnv({
        AWS_ACCESS_KEY_ID: credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
        AWS_DEFAULT_REGION: region,
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_PAGER: '',
      }),
      maxBuffer: 64 * MB,
    });
  }

  it('aws s3 ls --recursive lists all 5,000 keys; without it, the top-level prefixes', async () => {
    const { stdout } = await aws(['s3', 'ls', '--recursive', 's3://many/']);
    const listed = stdout
      .trimEnd()
      .split('\n')
      .map((line) => /^\S+ \S+ +\d+ (.*)$/.exec(line)?.[1]);
    expect(listed).toHaveLength(5000);
    expect(listed).toEqual([...keys].sort(byteOrder));

    const top = (await aws(['s3', 'ls', 's3://many/'])).stdout.trimEnd().split('\n');
    expect(top.filter((l) => l.includes(' PRE ')).map((l) => l.trim())).toEqual(TOPS.map((t) => `PRE ${t}/`));
    expect(top.filter((l) => !l.includes(' PRE ')).map((l) => /^\S+ \S+ +\d+ (.*)$/.exec(l)?.[1])).toEqual(
      [...ROOT_KEYS].sort(byteOrder),
    );
  });

  it('aws s3 cp --recursive up and back down gives identical files; s3api and presign work', async () => {
    await aws(['s3', 'cp', '--recursive', '--only-show-errors', folder, 's3://tree/awscli/']);
    const down = join(root, 'awscli-down');
    await aws(['s3', 'cp', '--recursive', '--only-show-errors', 's3://tree/awscli/', down]);
    const expected = await tree(folder);
    expect(expected.size).toBe(301);
    expect(await tree(down)).toEqual(expected);

    // 12 MB is over the CLI's 8 MB multipart threshold: two parts.
    const head = JSON.parse(
      (await aws(['s3api', 'head-object', '--bucket', 'tree', '--key', 'awscli/big.bin'])).stdout,
    ) as { ContentLength: number; ETag: string };
    expect(head.ContentLength).toBe(12 * MB);
    expect(head.ETag).toMatch(/^"[0-9a-f]{32}-2"$/);
    const listed = JSON.parse(
      (
        await aws([
          's3api',
          'list-objects-v2',
          '--bucket',
          'many',
          '--prefix',
          'normalized/',
          '--delimiter',
          '/',
        ])
      ).stdout,
    ) as { CommonPrefixes: { Prefix: string }[] };
    expect(listed.CommonPrefixes.map((p) => p.Prefix)).toEqual(
      Array.from({ length: 7 }, (_, i) => `normalized/factory=f${i}/`),
    );

    const url = (await aws(['s3', 'presign', 's3://tree/awscli/dir 1/sub+1/file 1 é.txt'])).stdout.trim();
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(
      createHash('md5')
        .update(Buffer.from(await res.arrayBuffer()))
        .digest('hex'),
    ).toBe(await md5File(join(folder, 'dir 1', 'sub+1', 'file 1 é.txt')));

    await aws(['s3', 'rm', '--recursive', '--only-show-errors', 's3://tree/awscli/']);
    expect(
      (await aws(['s3', 'ls', '--recursive', 's3://tree/awscli/']).catch((e: { stdout: string }) => e))
        .stdout,
    ).toBe('');
    await aws(['s3', 'mb', 's3://made-by-cli']);
    await aws(['s3', 'rb', 's3://made-by-cli']);
  });
});

describe('rclone', () => {
  beforeAll(() => requireClient('rclone'));

  function rclone(args: string[]) {
    return run(CLIENTS.rclone.path, args, {
      env: clientEnv({
        // No configuration file: the remote `emu` comes from the environment.
        RCLONE_CONFIG: join(root, 'no-rclone.conf'),
        RCLONE_CONFIG_EMU_TYPE: 's3',
        RCLONE_CONFIG_EMU_PROVIDER: 'Other',
        RCLONE_CONFIG_EMU_ACCESS_KEY_ID: credentials.accessKeyId,
        RCLONE_CONFIG_EMU_SECRET_ACCESS_KEY: credentials.secretAccessKey,
        RCLONE_CONFIG_EMU_ENDPOINT: emulator.url,
        RCLONE_CONFIG_EMU_REGION: region,
        RCLONE_CONFIG_EMU_FORCE_PATH_STYLE: 'true',
      }),
      maxBuffer: 64 * MB,
    });
  }

  it('rclone lsf -R and rclone ls list all 5,000 keys; lsf the top-level folders', async () => {
    const files = (await rclone(['lsf', '-R', '--files-only', 'emu:many'])).stdout.trimEnd().split('\n');
    expect(files.sort(byteOrder)).toEqual([...keys].sort(byteOrder));
    const sized = (await rclone(['ls', 'emu:many'])).stdout.trimEnd().split('\n');
    expect(sized).toHaveLength(5000);
    expect(sized).toContain(`${String(Buffer.byteLength(keys[7]!)).padStart(9)} ${keys[7]}`);
    const top = (await rclone(['lsf', 'emu:many'])).stdout.trimEnd().split('\n');
    expect(top.sort(byteOrder)).toEqual([...ROOT_KEYS, ...TOPS.map((t) => `${t}/`)].sort(byteOrder));
  });

  it('rclone copy up (multipart above 5 MB) and back down gives identical files; rclone check agrees', async () => {
    const multipart = ['--s3-upload-cutoff', '5M', '--s3-chunk-size', '5M'];
    await rclone(['copy', ...multipart, folder, 'emu:tree/rclone']);
    await rclone(['check', folder, 'emu:tree/rclone']);
    const down = join(root, 'rclone-down');
    await rclone(['copy', 'emu:tree/rclone', down]);
    expect(await tree(down)).toEqual(await tree(folder));
  });
});

describe('s3cmd', () => {
  let config: string;
  beforeAll(async () => {
    requireClient('s3cmd');
    const { host } = new URL(emulator.url);
    config = join(root, 's3cmd.cfg');
    // Path style (host_bucket without %(bucket)s) and Signature Version 4.
    await writeFile(
      config,
      [
        '[default]',
        `access_key = ${credentials.accessKeyId}`,
        `secret_key = ${credentials.secretAccessKey}`,
        `host_base = ${host}`,
        `host_bucket = ${host}`,
        `bucket_location = ${region}`,
        'use_https = False',
        'signature_v2 = False',
        '',
      ].join('\n'),
    );
  });

  function s3cmd(args: string[]) {
    return run(CLIENTS.s3cmd.path, ['-c', config, ...args], { env: clientEnv({}), maxBuffer: 64 * MB });
  }

  it('s3cmd ls -r lists all 5,000 keys; ls shows the top-level folders', async () => {
    const listed = (await s3cmd(['ls', '-r', 's3://many/'])).stdout
      .trimEnd()
      .split('\n')
      .map((line) => /s3:\/\/many\/(.*)$/.exec(line)?.[1]);
    expect(listed).toEqual([...keys].sort(byteOrder));
    const top = (await s3cmd(['ls', 's3://many/'])).stdout.trimEnd().split('\n');
    expect(top.filter((l) => l.includes('DIR')).map((l) => l.trim())).toEqual(
      TOPS.map((t) => `DIR  s3://many/${t}/`),
    );
  });

  it('s3cmd put (multipart above 5 MB) and get give identical files', async () => {
    const big = join(folder, 'big.bin');
    const small = join(folder, 'dir 2', 'sub+2', 'file 2 é.txt');
    await s3cmd(['put', '--multipart-chunk-size-mb=5', big, 's3://tree/s3cmd/big.bin']);
    await s3cmd(['put', small, 's3://tree/s3cmd/small é.txt']);
    const down = join(root, 's3cmd-down');
    await mkdir(down);
    await s3cmd(['get', 's3://tree/s3cmd/big.bin', join(down, 'big.bin')]);
    await s3cmd(['get', 's3://tree/s3cmd/small é.txt', join(down, 'small.txt')]);
    expect(await md5File(join(down, 'big.bin'))).toBe(await md5File(big));
    expect(await md5File(join(down, 'small.txt'))).toBe(await md5File(small));
    await s3cmd(['del', 's3://tree/s3cmd/big.bin']);
    expect((await s3cmd(['ls', 's3://tree/s3cmd/'])).stdout).not.toContain('big.bin');
  });
});
