import { generateKeyPairSync, timingSafeEqual } from 'node:crypto';
import type { Stats } from 'node:fs';
import { type FileHandle, open, readdir, rm, stat } from 'node:fs/promises';
import { join, posix, resolve, sep } from 'node:path';
import ssh2 from 'ssh2';

const { Server, utils } = ssh2;
const { OPEN_MODE, STATUS_CODE } = utils.sftp;

/**
 * A small SFTP server over one folder, on ssh2's server API: the factory end of an SFTP source for
 * the demo and the integration tests (the system tests use real OpenSSH). It serves what a fetch needs
 * — realpath, stat, directory listings, reads, remove — and refuses writes. Paths cannot leave the root.
 */
export interface SftpServerOptions {
  root: string;
  port: number;
  user: string;
  password: string;
  /** Drop the connection after this many bytes have been sent (to test interrupted transfers). */
  cutAfterBytes?: number;
}

export interface SftpServerHandle {
  port: number;
  /** The host key's SHA256 fingerprint, as `ssh-keygen -lf` prints it. */
  hostKeyFingerprint: string;
  close(): Promise<void>;
}

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export async function startSftpServer(options: SftpServerOptions): Promise<SftpServerHandle> {
  // A fresh host key per server (ssh2 reads SEC1 PEM for ECDSA keys).
  const { privateKey } = generateKeyPairSync('ec', {
    namedCurve: 'prime256v1',
    privateKeyEncoding: { type: 'sec1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const hostKey = utils.parseKey(privateKey);
  if (hostKey instanceof Error) throw hostKey;
  const { createHash } = await import('node:crypto');
  const hostKeyFingerprint = `SHA256:${createHash('sha256').update(hostKey.getPublicSSH()).digest('base64').replace(/=+$/, '')}`;
  const root = resolve(options.root);
  const inside = (p: string) => {
    const full = resolve(root, `.${posix.resolve('/', p)}`);
    return full === root || full.startsWith(root + sep) ? full : root;
  };
  let sent = 0;

  const server = new Server({ hostKeys: [privateKey] }, (client) => {
    client.on('authentication', (ctx) => {
      if (
        ctx.method === 'password' &&
        equal(ctx.username, options.user) &&
        equal(ctx.password, options.password)
      )
        ctx.accept();
      else ctx.reject(['password']);
    });
    client.on('error', () => undefined);
    client.on('ready', () => {
      client.on('session', (accept) => {
        const session = accept();
        session.on('sftp', (acceptSftp) => {
          const sftp = acceptSftp();
          const handles = new Map<number, { file?: FileHandle; dir?: string[]; path: string }>();
          let next = 0;
          sftp.on('close', () => {
            for (const h of handles.values()) void h.file?.close().catch(() => undefined);
            handles.clear();
          });
          const handle = (n: number) => {
            const b = Buffer.alloc(4);
            b.writeUInt32BE(n);
            return b;
          };
          const lookup = (b: Buffer) => handles.get(b.length === 4 ? b.readUInt32BE(0) : -1);
          const attrs = (s: Stats) => ({
            mode: s.mode,
            uid: s.uid,
            gid: s.gid,
            size: s.size,
            atime: Math.floor(s.atimeMs / 1000),
            mtime: Math.floor(s.mtimeMs / 1000),
          });
          sftp.on('REALPATH', (id, p) => {
            const normalized = posix.resolve('/', p);
            sftp.name(id, [{ filename: normalized, longname: normalized, attrs: {} as never }]);
          });
          const doStat = (id: number, p: string) =>
            stat(inside(p)).then(
              (s) => sftp.attrs(id, attrs(s)),
              () => sftp.status(id, STATUS_CODE.NO_SUCH_FILE),
            );
          sftp.on('STAT', doStat);
          sftp.on('LSTAT', doStat);
          sftp.on('OPENDIR', async (id, p) => {
            try {
              const names = await readdir(inside(p));
              handles.set(next, { dir: names, path: p });
              sftp.handle(id, handle(next++));
            } catch {
              sftp.status(id, STATUS_CODE.NO_SUCH_FILE);
            }
          });
          sftp.on('READDIR', async (id, h) => {
            const entry = lookup(h);
            if (!entry?.dir) return sftp.status(id, STATUS_CODE.FAILURE);
            if (entry.dir.length === 0) return sftp.status(id, STATUS_CODE.EOF);
            const batch = entry.dir.splice(0, 64);
            const names = [];
            for (const n of batch) {
              const s = await stat(join(inside(entry.path), n)).catch(() => undefined);
              if (!s) continue;
              const type = s.isDirectory() ? 'd' : '-';
              names.push({
                filename: n,
                longname: `${type}rw-r--r-- 1 u g ${s.size} Jan 1 00:00 ${n}`,
                attrs: attrs(s),
              });
            }
            sftp.name(id, names);
          });
          sftp.on('OPEN', async (id, p, flags) => {
            if (flags & (OPEN_MODE.WRITE | OPEN_MODE.CREAT | OPEN_MODE.APPEND | OPEN_MODE.TRUNC)) {
              return sftp.status(id, STATUS_CODE.PERMISSION_DENIED);
            }
            try {
              handles.set(next, { file: await open(inside(p), 'r'), path: p });
              sftp.handle(id, handle(next++));
            } catch {
              sftp.status(id, STATUS_CODE.NO_SUCH_FILE);
            }
          });
          sftp.on('READ', async (id, h, offset, length) => {
            const entry = lookup(h);
            if (!entry?.file) return sftp.status(id, STATUS_CODE.FAILURE);
            const buf = Buffer.alloc(length);
            const { bytesRead } = await entry.file.read(buf, 0, length, offset);
            if (bytesRead === 0) return sftp.status(id, STATUS_CODE.EOF);
            sent += bytesRead;
            if (options.cutAfterBytes !== undefined && sent > options.cutAfterBytes) {
              client.end();
              return;
            }
            sftp.data(id, buf.subarray(0, bytesRead));
          });
          sftp.on('CLOSE', async (id, h) => {
            const entry = lookup(h);
            await entry?.file?.close();
            handles.delete(h.readUInt32BE(0));
            sftp.status(id, STATUS_CODE.OK);
          });
          sftp.on('REMOVE', async (id, p) => {
            await rm(inside(p)).then(
              () => sftp.status(id, STATUS_CODE.OK),
              () => sftp.status(id, STATUS_CODE.NO_SUCH_FILE),
            );
          });
          for (const op of ['WRITE', 'SETSTAT', 'FSETSTAT', 'MKDIR', 'RMDIR', 'RENAME', 'SYMLINK'] as const) {
            sftp.on(op, (id: number) => sftp.status(id, STATUS_CODE.OP_UNSUPPORTED));
          }
          sftp.on('FSTAT', async (id, h) => {
            const entry = lookup(h);
            if (!entry?.file) return sftp.status(id, STATUS_CODE.FAILURE);
            sftp.attrs(id, attrs(await entry.file.stat()));
          });
        });
      });
    });
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(options.port, '127.0.0.1', () => ok());
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    hostKeyFingerprint,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}
