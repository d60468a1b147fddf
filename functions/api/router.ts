import { z } from 'zod';
import {
  devicesQuery,
  eventsQuery,
  FILE_ID,
  fileQuery,
  filesQuery,
  healthQuery,
  metricsQuery,
  overviewQuery,
  readingsQuery,
} from '../contracts/api.js';
import { bearerMatches } from '../core/bearer.js';
import { QueryError } from '../warehouse/query.js';
import type { DashboardAssets } from './dashboard.js';
import { listEvents } from './events.js';
import { fileDetail, listFiles } from './files.js';
import { healthGrid } from './health.js';
import { type ApiRequest, type ApiResponse, HttpError, json, parseQuery } from './http.js';
import { listDevices, overview, type QueueDepth } from './overview.js';
import { listMetrics, readSeries } from './readings.js';
import type { RunQuery } from './sql.js';

export type { ApiRequest, ApiResponse } from './http.js';

export interface ApiDeps {
  /** The API token; `undefined` means no token is configured. */
  token: string | undefined;
  /** Deployed, a missing token closes the API; locally (loopback only) it is open. */
  requireToken: boolean;
  warehouse: () => Promise<{ eTag: string; lastModified: string; bytes: number } | undefined>;
  /** Read-only SQL on the warehouse copies, with bound parameters; `undefined`: no warehouse yet. */
  query: RunQuery;
  /** Depths of the pipeline's queues and dead-letter queues, where this function can see them. */
  queues: () => Promise<QueueDepth[] | null>;
  dashboard: DashboardAssets;
}

const queryBody = z.object({ sql: z.string().min(1).max(100_000) }).strict();

function authorized(req: ApiRequest, deps: ApiDeps): boolean {
  if (!deps.token) return !deps.requireToken;
  return bearerMatches(req.headers.authorization, deps.token);
}

type Handler = (req: ApiRequest, deps: ApiDeps, match: RegExpExecArray) => Promise<unknown>;

/** The read API (contracts/api.ts), behind the token. */
const ROUTES: [method: string, path: RegExp, handler: Handler][] = [
  [
    'GET',
    /^\/api\/overview$/,
    async (req, deps) => {
      const q = parseQuery(overviewQuery, req.query);
      const [warehouse, queues] = await Promise.all([deps.warehouse(), deps.queues()]);
      return overview(deps.query, q, { warehouse, queues });
    },
  ],
  ['GET', /^\/api\/devices$/, (req, deps) => listDevices(deps.query, parseQuery(devicesQuery, req.query))],
  ['GET', /^\/api\/metrics$/, (req, deps) => listMetrics(deps.query, parseQuery(metricsQuery, req.query))],
  ['GET', /^\/api\/readings$/, (req, deps) => readSeries(deps.query, parseQuery(readingsQuery, req.query))],
  ['GET', /^\/api\/events$/, (req, deps) => listEvents(deps.query, parseQuery(eventsQuery, req.query))],
  ['GET', /^\/api\/health$/, (req, deps) => healthGrid(deps.query, parseQuery(healthQuery, req.query))],
  ['GET', /^\/api\/files$/, (req, deps) => listFiles(deps.query, parseQuery(filesQuery, req.query))],
  [
    'GET',
    /^\/api\/files\/([^/]+)$/,
    (req, deps, m) => {
      const id = decodeURIComponent(m[1]!);
      if (!FILE_ID.test(id)) throw new HttpError(400, 'id: 24 hexadecimal digits, as /api/files lists them');
      return fileDetail(deps.query, id, parseQuery(fileQuery, req.query));
    },
  ],
  [
    'POST',
    /^\/api\/query$/,
    async (req, deps) => {
      let body: unknown;
      try {
        body = JSON.parse(req.body ?? '');
      } catch {
        throw new HttpError(400, 'body must be JSON: {"sql": "…"}');
      }
      const parsed = queryBody.safeParse(body);
      if (!parsed.success) throw new HttpError(400, z.prettifyError(parsed.error));
      // The caller's SQL: DuckDB's refusal is the caller's error.
      const result = await deps.query(parsed.data.sql).catch((err: unknown) => {
        throw err instanceof QueryError ? new HttpError(400, err.message) : err;
      });
      if (!result) throw new HttpError(404, 'no warehouse yet');
      return result;
    },
  ],
];

/** Paths of the first release, kept working where they are deployed (the Function URL's root). */
const ALIASES: Record<string, string> = {
  '/query': '/api/query',
  '/files': '/api/files',
  '/health': '/api/status',
};

/**
 * The api function: the dashboard page (`GET /`, `/assets/*`), the read API (`/api/*`, contracts/api.ts)
 * and the SQL endpoint (`POST /api/query`). The page and `GET /api/status` are open — the page must
 * load to ask for the token — everything else takes `Authorization: Bearer <API_TOKEN>` when a token is
 * configured, and deployed one must be. Every query runs on read-only copies of the warehouse.
 */
export async function route(req: ApiRequest, deps: ApiDeps): Promise<ApiResponse> {
  const trimmed = req.path.replace(/\/+$/, '') || '/';
  const path = ALIASES[trimmed] ?? trimmed;
  if (req.method === 'GET' && (path === '/' || path.startsWith('/assets/'))) {
    const name = path === '/' ? 'index.html' : path.slice('/assets/'.length);
    const asset = await deps.dashboard.serve(name, req.headers['if-none-match']);
    if (asset) return asset;
    return path === '/'
      ? json(503, { message: 'the dashboard is not built: run `npm run build` (npm install does it)' })
      : json(404, { message: `no asset ${name}` });
  }
  if (req.method === 'GET' && path === '/api/status') {
    const warehouse = await deps.warehouse();
    return json(200, { status: 'ok', warehouse: warehouse ?? null, auth: deps.token ? 'token' : 'open' });
  }
  const matches = ROUTES.flatMap(([method, pattern, handler]) => {
    const m = pattern.exec(path);
    return m ? [{ method, handler, m }] : [];
  });
  if (matches.length === 0) return json(404, { message: `no route for ${req.method} ${path}` });
  const match = matches.find((r) => r.method === req.method);
  if (!match)
    return json(405, { message: `${req.method} not allowed on ${path}` }, { allow: matches[0]!.method });
  if (!authorized(req, deps)) {
    return deps.token || !deps.requireToken
      ? json(401, { message: 'missing or wrong bearer token' }, { 'www-authenticate': 'Bearer' })
      : json(503, { message: 'API_TOKEN is not configured' });
  }
  try {
    return json(200, await match.handler(req, deps, match.m));
  } catch (err) {
    if (err instanceof HttpError) return json(err.status, { message: err.message });
    // The API's own SQL stopped (the time or memory limit): try again, or a narrower range.
    if (err instanceof QueryError)
      return json(503, { message: `the query did not complete: ${err.message}` });
    throw err;
  }
}
