import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import SftpClient from 'ssh2-sftp-client';
import type { Source } from '../contracts/factories.js';
import { classify, FetchError, type RemoteFile, type SourceClient } from './remote.js';

type SftpSource = Extract<Source, { type: 'sftp' }>;

/** `SHA256:<base64, unpadded>` — the format `ssh-keygen -lf` prints. */
export function sshFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

export async function connectSftp(
  source: SftpSource,
  name: string,
  secrets: { password?: string; privateKey?: string },
): Promise<SourceClient> {
  const client = new SftpClient(name);
  let presented: string | undefined;
  try {
    await client.connect({
      host: source.host,
      port: source.port,
      username: source.user,
      password: secrets.password,
      privateKey: secrets.privateKey,
      readyTimeout: 15_000,
      // Pin the server's identity when configured; ssh2 passes the raw host key.
      ...(source.hostKey
        ? {
            hostVerifier: (key: Buffer) => {
              presented = sshFingerprint(key);
              return presented === source.hostKey!.replace(/=+$/, '');
            },
          }
        : {}),
    });
  } catch (err) {
    if (presented && source.hostKey && presented !== source.hostKey.replace(/=+$/, '')) {
      throw new FetchError(
        name,
        'auth',
        `host key ${presented} does not match the pinned ${source.hostKey}`,
        { cause: err },
      );
    }
    throw new FetchError(
      name,
      classify(err),
      `cannot connect to sftp://${source.user}@${source.host}:${source.port}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const root = source.dir;
  return {
    async list() {
      const out: RemoteFile[] = [];
      const walk = async (dir: string) => {
        for (const entry of await client.list(posix.join(root, dir))) {
          const rel = dir ? `${dir}/${entry.name}` : entry.name;
          if (entry.type === 'd' && source.recursive) await walk(rel);
          else if (entry.type === '-')
            out.push({ path: rel, size: entry.size, mtime: new Date(entry.modifyTime) });
        }
      };
      try {
        await walk('');
      } catch (err) {
        throw new FetchError(name, classify(err), `cannot list ${root}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      return out;
    },
    async open(file) {
      return client.createReadStream(posix.join(root, file.path)) as unknown as Readable;
    },
    async remove(file) {
      await client.delete(posix.join(root, file.path));
    },
    async close() {
      await client.end().catch(() => undefined);
    },
  };
}
