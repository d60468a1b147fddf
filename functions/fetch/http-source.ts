import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { z } from 'zod';
import type { Source } from '../contracts/factories.js';
import { classify, FetchError, type RemoteFile, type SourceClient } from './remote.js';

type HttpSource = Extract<Source, { type: 'http' }>;

/** One listing item: a name or URL, or an object describing the file. */
const itemSchema = z.union([
  z.string().min(1),
  z
    .object({
      name: z.string().min(1).optional(),
      path: z.string().min(1).optional(),
      url: z.string().min(1).optional(),
      size: z.number().int().min(0).optional(),
      mtime: z.union([z.string(), z.number()]).optional(),
      modified: z.union([z.string(), z.number()]).optional(),
    })
    .refine((o) => o.name || o.path || o.url, 'an item needs name, path or url'),
]);
/** A page: an array of items, or `{ items | files, next }` where `next` is the next page's URL. */
const pageSchema = z.union([
  z.array(itemSchema),
  z.object({
    items: z.array(itemSchema).optional(),
    files: z.array(itemSchema).optional(),
    next: z.string().nullish(),
  }),
]);

/** A bare name is a file below the listing URL (`/files` lists `/files/<name>`); a URL is taken as given. */
function fileUrl(nameOrUrl: string, listing: URL): URL {
  if (/^[a-z]+:\/\//i.test(nameOrUrl) || nameOrUrl.startsWith('/')) return new URL(nameOrUrl, listing);
  const dir = listing.pathname.endsWith('/') ? listing.pathname : `${listing.pathname}/`;
  return new URL(`${dir}${nameOrUrl.split('/').map(encodeURIComponent).join('/')}`, listing.origin);
}

function toRemote(item: z.infer<typeof itemSchema>, base: URL): RemoteFile {
  if (typeof item === 'string') {
    const url = fileUrl(item, base);
    return { path: /^[a-z]+:\/\//i.test(item) ? posix.basename(url.pathname) : item, url: url.href };
  }
  const url = item.url ? new URL(item.url, base) : fileUrl(item.path ?? item.name!, base);
  const when = item.mtime ?? item.modified;
  return {
    path: item.path ?? item.name ?? posix.basename(url.pathname),
    url: url.href,
    size: item.size,
    mtime:
      when === undefined ? undefined : new Date(typeof when === 'number' && when < 1e11 ? when * 1000 : when),
  };
}

/**
 * An HTTP source: a JSON listing endpoint (paged through `next`), each file downloaded with GET.
 * `since` is the previous run's watermark, passed as `sinceParam` when configured.
 */
export function connectHttp(
  source: HttpSource,
  name: string,
  secrets: { token?: string },
  since?: string,
): SourceClient {
  const headers: Record<string, string> = secrets.token ? { authorization: `Bearer ${secrets.token}` } : {};
  const get = async (url: string) => {
    let res: Response;
    try {
      res = await fetch(url, { headers, signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      throw new FetchError(
        name,
        classify((err as Error).cause ?? err),
        `GET ${url}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    if (res.status === 401 || res.status === 403)
      throw new FetchError(name, 'auth', `GET ${url}: HTTP ${res.status}`);
    if (!res.ok)
      throw new FetchError(
        name,
        res.status >= 500 ? 'unreachable' : 'protocol',
        `GET ${url}: HTTP ${res.status}`,
      );
    return res;
  };
  return {
    async list() {
      const first = new URL(source.url);
      if (source.sinceParam && since) first.searchParams.set(source.sinceParam, since);
      const out: RemoteFile[] = [];
      const seen = new Set<string>();
      for (let url: string | undefined = first.href; url && !seen.has(url); ) {
        seen.add(url);
        const body = pageSchema.safeParse(await (await get(url)).json().catch(() => undefined));
        if (!body.success)
          throw new FetchError(name, 'protocol', `GET ${url}: not a listing: ${z.prettifyError(body.error)}`);
        const page = body.data;
        const items = Array.isArray(page) ? page : (page.items ?? page.files ?? []);
        out.push(...items.map((i) => toRemote(i, new URL(url!))));
        url = Array.isArray(page) || !page.next ? undefined : new URL(page.next, url).href;
      }
      return out;
    },
    async open(file) {
      const res = await get(file.url!);
      if (!res.body) throw new FetchError(name, 'protocol', `GET ${file.url}: empty body`);
      return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
    },
    async remove() {
      throw new FetchError(name, 'config', 'afterFetch: delete is not supported for http sources');
    },
    async close() {},
  };
}
