import { timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { QueryError } from '../warehouse/query.js';

/** A request as a Lambda Function URL delivers it (payload format 2.0), reduced to what routing needs. */
export interface ApiRequest {
  method: string;
  path: string;
  query: Record<string, string | undefined>;
  headers: Record<string, string | undefined>;
  body?: string;
}

export interface ApiResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

export interface ApiDeps {
  /** The API token; `undefined` means no token is configured. */
  token: string | undefined;
  /** Deployed, a missing token closes the API; locally (loopback only) it is open. */
  requireToken: boolean;
  warehouse: () => Promise<{ eTag: string; lastModified: string; bytes: number } | undefined>;
  /** `undefined`: there is no warehouse yet. */
  query: (sql: string) => Promise<{ columns: string[]; rows: Record<string, unknown>[] } | undefined>;
}

const json = (statusCode: number, value: unknown): ApiResponse => ({
  statusCode,
  headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
  body: `${JSON.stringify(value)}\n`,
});

const queryBody = z.object({ sql: z.string().min(1).max(100_000) }).strict();

function authorized(req: ApiRequest, deps: ApiDeps): boolean {
  if (!deps.token) return !deps.requireToken;
  const given = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
  const a = Buffer.from(given);
  const b = Buffer.from(deps.token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The query API: `GET /health` (open), `POST /query {"sql": …}` and `GET /files` (Bearer token).
 * Queries run on a read-only copy of the warehouse with DuckDB's external access disabled.
 */
export async function route(req: ApiRequest, deps: ApiDeps): Promise<ApiResponse> {
  const path = req.path.replace(/\/+$/, '') || '/';
  if (req.method === 'GET' && path === '/health') {
    const warehouse = await deps.warehouse();
    return json(200, { status: 'ok', warehouse: warehouse ?? null });
  }
  if (!['/query', '/files'].includes(path))
    return json(404, { message: `no route for ${req.method} ${path}` });
  if (!authorized(req, deps)) {
    return deps.token || !deps.requireToken
      ? json(401, { message: 'missing or wrong bearer token' })
      : json(503, { message: 'API_TOKEN is not configured' });
  }
  let sql: string;
  if (path === '/files' && req.method === 'GET') {
    const limit = Math.min(1000, Math.max(1, Number(req.query.limit ?? 100) || 100));
    sql = `SELECT * FROM pipeline_files ORDER BY raw_created_at DESC LIMIT ${limit}`;
  } else if (path === '/query' && req.method === 'POST') {
    let body: unknown;
    try {
      body = JSON.parse(req.body ?? '');
    } catch {
      return json(400, { message: 'body must be JSON: {"sql": "…"}' });
    }
    const parsed = queryBody.safeParse(body);
    if (!parsed.success) return json(400, { message: z.prettifyError(parsed.error) });
    sql = parsed.data.sql;
  } else {
    return json(405, { message: `${req.method} not allowed on ${path}` });
  }
  try {
    const result = await deps.query(sql);
    return result ? json(200, result) : json(404, { message: 'no warehouse yet' });
  } catch (err) {
    if (err instanceof QueryError) return json(400, { message: err.message });
    throw err;
  }
}
