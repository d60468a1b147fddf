import { useEffect, useRef, useState } from 'preact/hooks';
import type { Page } from '../../../functions/contracts/api.js';
import { ApiError, apiGet, type Params, queryString, useAuth } from '../api.js';

export interface Pages<T> {
  items: T[];
  nextCursor: string | null;
  loading: boolean;
  error: ApiError | undefined;
  /** Fetches the next page (the cursor's) and appends it. */
  more: () => void;
}

const asApiError = (err: unknown) =>
  err instanceof ApiError ? err : new ApiError(0, `cannot reach the API (${String(err)})`);

/**
 * A cursor-paged list (`Page<T>`): the first page whenever the request changes, then "Load more"
 * appends the next page. `pick` takes the page out of a larger answer (a file's rejects).
 */
export function usePages<T, R = Page<T>>(
  path: string | null,
  params: Params,
  refresh: unknown,
  pick: (answer: R) => Page<T> = (answer) => answer as unknown as Page<T>,
  onFirst?: (answer: R) => void,
): Pages<T> {
  const { version } = useAuth();
  const key = path === null ? null : `${path}${queryString(params)}`;
  const [state, setState] = useState<Omit<Pages<T>, 'more'>>({
    items: [],
    nextCursor: null,
    loading: key !== null,
    error: undefined,
  });
  const current = useRef<AbortController | null>(null);
  const pickRef = useRef(pick);
  pickRef.current = pick;
  const firstRef = useRef(onFirst);
  firstRef.current = onFirst;

  useEffect(() => {
    current.current?.abort();
    if (path === null) {
      setState({ items: [], nextCursor: null, loading: false, error: undefined });
      return;
    }
    const controller = new AbortController();
    current.current = controller;
    setState((s) => ({ ...s, loading: true, error: undefined }));
    apiGet<R>(path, params, controller.signal).then(
      (answer) => {
        if (controller.signal.aborted) return;
        const page = pickRef.current(answer);
        firstRef.current?.(answer);
        setState({ items: page.items, nextCursor: page.nextCursor, loading: false, error: undefined });
      },
      (err: unknown) => {
        if (controller.signal.aborted) return;
        setState({ items: [], nextCursor: null, loading: false, error: asApiError(err) });
      },
    );
    return () => controller.abort();
  }, [key, refresh, version]);

  const more = () => {
    if (path === null || !state.nextCursor || state.loading) return;
    const controller = new AbortController();
    current.current = controller;
    setState((s) => ({ ...s, loading: true, error: undefined }));
    apiGet<R>(path, { ...params, cursor: state.nextCursor }, controller.signal).then(
      (answer) => {
        if (controller.signal.aborted) return;
        const page = pickRef.current(answer);
        setState((s) => ({
          items: [...s.items, ...page.items],
          nextCursor: page.nextCursor,
          loading: false,
          error: undefined,
        }));
      },
      (err: unknown) => {
        if (controller.signal.aborted) return;
        setState((s) => ({ ...s, loading: false, error: asApiError(err) }));
      },
    );
  };

  return { ...state, more };
}
