import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApiResponse } from './http.js';

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  map: 'application/json',
  svg: 'image/svg+xml',
  png: 'image/png',
  woff2: 'font/woff2',
};
/** An asset's name: one path segment, so a request can only ever name a file in the folder. */
const ASSET = /^[a-z0-9][a-z0-9._-]*\.(html|js|css|map|svg|png|woff2)$/;

/**
 * The page's headers: nothing but the bundled files may run or load (no CDN, no inline script), the
 * page may not be framed, and the token never leaves in a Referer.
 */
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

interface Asset {
  body: Buffer;
  type: string;
  eTag: string;
}

/**
 * The dashboard's built files (`npm run build` → `dashboard/dist`; deployed, copied into the function
 * package), served by the api function: `GET /` is `index.html`, `GET /assets/<name>` the rest. Deployed, read
 * once per file and kept (they change only with a new deployment); locally, read on every request.
 */
export class DashboardAssets {
  private readonly cache = new Map<string, Promise<Asset | undefined>>();

  /** `keep`: deployed, the files never change; locally `npm run build` may rewrite them at any time. */
  constructor(
    private readonly dir: string,
    private readonly keep = true,
  ) {}

  private load(name: string): Promise<Asset | undefined> {
    if (!this.keep) this.cache.delete(name);
    let asset = this.cache.get(name);
    if (!asset) {
      asset = readFile(join(this.dir, name)).then(
        (body) => ({
          body,
          type: TYPES[name.slice(name.lastIndexOf('.') + 1)] ?? 'application/octet-stream',
          eTag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
        }),
        (err: NodeJS.ErrnoException) => {
          this.cache.delete(name);
          if (err.code === 'ENOENT') return undefined;
          throw err;
        },
      );
      this.cache.set(name, asset);
    }
    return asset;
  }

  /** The response for `name`, or `undefined` if there is no such asset. */
  async serve(name: string, ifNoneMatch: string | undefined): Promise<ApiResponse | undefined> {
    if (!ASSET.test(name)) return undefined;
    const asset = await this.load(name);
    if (!asset) return undefined;
    // Revalidated on every load (a new deployment changes the files under the same names).
    const headers = {
      'content-type': asset.type,
      etag: asset.eTag,
      'cache-control': 'no-cache',
      ...PAGE_HEADERS,
    };
    if (ifNoneMatch === asset.eTag) return { statusCode: 304, headers, body: '' };
    const text = asset.type.includes('charset') || asset.type === 'application/json';
    return text
      ? { statusCode: 200, headers, body: asset.body.toString('utf8') }
      : { statusCode: 200, headers, body: asset.body.toString('base64'), isBase64Encoded: true };
  }
}
