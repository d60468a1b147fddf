import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';

/**
 * An HTTP "historian" for the demo and the tests: `GET /files` lists a folder as JSON pages
 * (`{ items: [{ name, size, mtime }], next }`), honouring `?since=<ISO time>`; `GET /files/<name>`
 * downloads one file. Requests need `Authorization: Bearer <token>`.
 */
export interface HttpFileServerOptions {
  root: string;
  port: number;
  token: string;
  pageSize?: number;
  /** Send only this many bytes of a download, then destroy the socket (interrupted transfer). */
  cutAfterBytes?: number;
}

export async function startHttpFileServer(
  options: HttpFileServerOptions,
): Promise<{ port: number; url: string; close(): Promise<void> }> {
  const pageSize = options.pageSize ?? 100;
  const server: Server = createServer((req, res) => {
    void (async () => {
      if (req.headers.authorization !== `Bearer ${options.token}`) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"message":"unauthorized"}');
        return;
      }
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/files') {
        const since = url.searchParams.get('since');
        const page = Number(url.searchParams.get('page') ?? '0');
        const names = (await readdir(options.root)).sort();
        const items = [];
        for (const name of names) {
          const s = await stat(join(options.root, name));
          if (!s.isFile() || (since && s.mtime.toISOString() <= since)) continue;
          items.push({ name, size: s.size, mtime: s.mtime.toISOString() });
        }
        const slice = items.slice(page * pageSize, (page + 1) * pageSize);
        const more = (page + 1) * pageSize < items.length;
        const next = more
          ? `/files?page=${page + 1}${since ? `&since=${encodeURIComponent(since)}` : ''}`
          : null;
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ items: slice, next }));
        return;
      }
      const m = /^\/files\/([^/]+)$/.exec(url.pathname);
      const name = m ? decodeURIComponent(m[1]!) : undefined;
      if (!name || name.includes('/') || name.startsWith('.')) {
        res.writeHead(404).end();
        return;
      }
      const path = join(options.root, name);
      const s = await stat(path).catch(() => undefined);
      if (!s?.isFile()) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(s.size) });
      if (options.cutAfterBytes !== undefined) {
        const stream = createReadStream(path, { end: Math.max(0, options.cutAfterBytes - 1) });
        stream.on('end', () => res.destroy());
        stream.pipe(res, { end: false });
        return;
      }
      createReadStream(path).pipe(res);
    })().catch(() => res.destroy());
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(options.port, '127.0.0.1', () => ok());
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: `http://127.0.0.1:${port}/files`,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}
