import { useEffect, useState } from 'preact/hooks';

/**
 * Calls to the read API (same origin) and the API token.
 *
 * The token lives in `sessionStorage` (this browser tab's session only), is sent as
 * `Authorization: Bearer …` on every request, and is never put in a URL nor logged. A 401 from any
 * call drops a stored token (it was not accepted) and asks for one.
 */

const TOKEN_KEY = 'telemetry-dashboard.token';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export type Params = Record<string, string | number | null | undefined>;

interface AuthState {
  /** A token is stored for this session. */
  hasToken: boolean;
  /** The API answered 401: show the sign-in form. */
  needed: boolean;
  /** A stored token was refused by the API (it has been dropped). */
  refused: boolean;
  /** Bumped on sign-in and sign-out, so that every view fetches again. */
  version: number;
}

function storedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled
  }
}

let auth: AuthState = { hasToken: storedToken() !== null, needed: false, refused: false, version: 0 };
const listeners = new Set<(s: AuthState) => void>();

function setAuth(patch: Partial<AuthState>) {
  auth = { ...auth, ...patch };
  for (const listener of listeners) listener(auth);
}

export function useAuth(): AuthState {
  const [state, setState] = useState(auth);
  useEffect(() => {
    listeners.add(setState);
    setState(auth);
    return () => {
      listeners.delete(setState);
    };
  }, []);
  return state;
}

export function queryString(params: Params): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  }
  const s = search.toString();
  return s ? `?${s}` : '';
}

async function send(path: string, token: string | null, signal?: AbortSignal): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  return fetch(path, { headers, signal, cache: 'no-store', credentials: 'same-origin' });
}

async function failure(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText}`.trim();
  try {
    const body = (await res.json()) as { message?: unknown };
    if (typeof body.message === 'string' && body.message) message = body.message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(res.status, message);
}

/** `GET path?params` → the JSON body; throws an ApiError for a non-2xx answer. */
export async function apiGet<T>(path: string, params: Params = {}, signal?: AbortSignal): Promise<T> {
  const token = storedToken();
  const res = await send(`${path}${queryString(params)}`, token, signal);
  if (res.status === 401) {
    const refused = token !== null;
    if (refused) sessionStorage.removeItem(TOKEN_KEY);
    if (!auth.needed || refused) setAuth({ needed: true, refused: refused || auth.refused, hasToken: false });
  }
  if (!res.ok) throw await failure(res);
  return (await res.json()) as T;
}

/**
 * Tries a token against the API before keeping it: `false` when the API refuses it (401); any other
 * answer means the token itself was accepted (a 503 or 404 is the API's state, not the token's).
 */
export async function signIn(token: string): Promise<boolean> {
  const res = await send('/api/overview', token);
  if (res.status === 401) return false;
  sessionStorage.setItem(TOKEN_KEY, token);
  setAuth({ hasToken: true, needed: false, refused: false, version: auth.version + 1 });
  return true;
}

export function signOut() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: nothing was kept
  }
  setAuth({ hasToken: false, refused: false, version: auth.version + 1 });
}

/**
 * `/api/devices` and `/api/metrics` answer `{ items: [...] }` (the contract names only the item types);
 * a bare array is taken as well.
 */
export interface List<T> {
  items: T[];
}
export function itemsOf<T>(answer: List<T> | T[] | undefined): T[] | undefined {
  if (answer === undefined) return undefined;
  return Array.isArray(answer) ? answer : answer.items;
}

export interface ApiState<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
}

/**
 * Fetches `path?params` whenever the request (or `refresh`, or the sign-in state) changes; the previous
 * answer stays in `data` while the next one loads, so views do not flicker. `path` null: fetch nothing.
 */
export function useApi<T>(path: string | null, params: Params = {}, refresh: unknown = 0): ApiState<T> {
  const { version } = useAuth();
  const key = path === null ? null : `${path}${queryString(params)}`;
  const [state, setState] = useState<ApiState<T> & { key: string | null }>({
    data: undefined,
    error: undefined,
    loading: key !== null,
    key: null,
  });
  useEffect(() => {
    if (path === null || key === null) {
      setState({ data: undefined, error: undefined, loading: false, key });
      return;
    }
    const controller = new AbortController();
    setState((s) => ({ ...s, loading: true, error: undefined }));
    apiGet<T>(path, params, controller.signal).then(
      (data) => {
        if (!controller.signal.aborted) setState({ data, error: undefined, loading: false, key });
      },
      (err: unknown) => {
        if (controller.signal.aborted) return;
        const error =
          err instanceof ApiError ? err : new ApiError(0, `cannot reach the API (${String(err)})`);
        // A different request's data is dropped on error; the same request's (a refresh) is kept.
        setState((s) => ({ data: s.key === key ? s.data : undefined, error, loading: false, key }));
      },
    );
    return () => controller.abort();
  }, [key, refresh, version]);
  return { data: state.data, error: state.error, loading: state.loading };
}
