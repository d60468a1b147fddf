import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lockDataDir } from '../../local/data-lock.js';

describe('a data folder is used by one emulator at a time', () => {
  it('refuses a second taker while the first holds it, naming the process', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tp-lock-'));
    const release = lockDataDir(dir, 'S3 emulator');
    expect(() => lockDataDir(dir, 'S3 emulator')).toThrow(
      `${dir} is in use by process ${process.pid} (another S3 emulator?)`,
    );
    release();
    lockDataDir(dir, 'S3 emulator')();
  });

  it('takes over a lock whose process is gone (killed)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tp-lock-'));
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout;
    await writeFile(join(dir, 'LOCK'), gone);
    const release = lockDataDir(dir, 'SQS emulator');
    expect(await readFile(join(dir, 'LOCK'), 'utf8')).toBe(String(process.pid));
    release();
  });
});
