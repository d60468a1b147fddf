import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { logger } from '../functions/core/logger.js';

export type Route = (req: IncomingMessage, body: Buffer, url: URL) => Promise<RouteResult | undefined>;
export interface RouteResult {
  status: number;
  body: string | Buffer;
  headers?: Record<string, string>;
}

const MAX_BODY = 6 * 1024 * 1024; // Lambda's synchronous invocation payload limit

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of req) {
    size += (part as Buffer).length;
    if (size > MAX_BODY) throw Object.assign(new Error('request body over 6 MB'), { status: 413 });
    parts.push(part as Buffer);
  }
  return Buffer.concat(parts);
}

export function json(status: number, value: unknown, headers: Record<string, string> = {}): RouteResult {
  return {
    status,
    body: `${JSON.stringify(value)}\n`,
    headers: { 'content-type': 'application/json', ...headers },
  };
}

/** A small HTTP server: the first route that returns a result answers; otherwise 404. */
export async function startHttpServer(port: number, routes: Route[], host = '127.0.0.1'): Promise<Server> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      try {
        const url = new URL(req.url ?? '/', 'http://127.0.0.1');
        const body = await readBody(req);
        for (const route of routes) {
          const result = await route(req, body, url);
          if (result) {
            res.writeHead(result.status, result.headers ?? {});
            res.end(result.body);
            return;
          }
        }
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(`${JSON.stringify({ message: `no route for ${req.method} ${url.pathname}` })}\n`);
      } catch (err) {
        const status = (err as { status?: number }).status ?? 500;
        logger.error({ err, url: req.url }, 'request failed');
        if (!res.headersSent) res.writeHead(status, { 'content-type': 'application/json' });
        res.end(`${JSON.stringify({ message: (err as Error).message })}\n`);
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
