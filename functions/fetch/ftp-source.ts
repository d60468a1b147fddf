import { posix } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { Client } from 'basic-ftp';
import type { Source } from '../contracts/factories.js';
import { classify, FetchError, type RemoteFile, type SourceClient } from './remote.js';

type FtpSource = Extract<Source, { type: 'ftp' | 'ftps' }>;

export async function connectFtp(
  source: FtpSource,
  name: string,
  secrets: { password?: string },
): Promise<SourceClient> {
  const client = new Client(30_000);
  try {
    await client.access({
      host: source.host,
      port: source.port,
      user: source.user,
      password: secrets.password ?? 'anonymous@',
      secure: source.type === 'ftps',
    });
  } catch (err) {
    client.close();
    throw new FetchError(
      name,
      classify(err),
      `cannot connect to ${source.type}://${source.user}@${source.host}:${source.port}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const root = source.dir;
  // basic-ftp runs one task at a time; the download behind the last `open` must finish first.
  let pending: Promise<unknown> = Promise.resolve();
  return {
    async list() {
      await pending;
      const out: RemoteFile[] = [];
      const walk = async (dir: string) => {
        for (const entry of await client.list(posix.join(root, dir))) {
          const rel = dir ? `${dir}/${entry.name}` : entry.name;
          if (entry.isDirectory && source.recursive) await walk(rel);
          else if (entry.isFile) {
            // LIST dates are not machine-readable everywhere; MDTM is (modifiedAt is set from MLSD).
            const mtime =
              entry.modifiedAt ?? (await client.lastMod(posix.join(root, rel)).catch(() => undefined));
            out.push({ path: rel, size: entry.size, mtime });
          }
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
      // basic-ftp writes into a Writable; hand the caller the readable side, with errors propagated.
      await pending;
      const stream = new PassThrough();
      pending = client
        .downloadTo(stream, posix.join(root, file.path))
        .catch((err: Error) => stream.destroy(err));
      return stream as Readable;
    },
    async remove(file) {
      await pending;
      await client.remove(posix.join(root, file.path));
    },
    async close() {
      await pending;
      client.close();
    },
  };
}
