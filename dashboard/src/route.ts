import { useEffect, useState } from 'preact/hooks';
import type { DeviceSummary } from '../../functions/contracts/api.js';
import type { ApiError } from './api.js';

/**
 * The page's state lives in the URL's query string (`?view=readings&factory=demo&device=press-01…`):
 * a view can be shared as a link, a reload restores it, and back/forward step through what was looked
 * at. Times in the URL are ISO 8601 (UTC); a preset range is kept as its name (`range=24h`).
 */

export const VIEWS = ['overview', 'health', 'readings', 'events', 'files'] as const;
export type View = (typeof VIEWS)[number];

export interface Route {
  view: View;
  factory?: string;
  device?: string;
  metric?: string;
  /** A preset range name (`1h`, `6h`, `24h`, `7d`, `30d`, `all`); ignored when `from`/`to` are set. */
  range?: string;
  from?: string;
  to?: string;
  severity?: string;
  code?: string;
  status?: string;
  q?: string;
  file?: string;
}

/** Query-string order: stable, so equal states have equal URLs. */
const KEYS = [
  'view',
  'factory',
  'device',
  'metric',
  'range',
  'from',
  'to',
  'severity',
  'code',
  'status',
  'q',
  'file',
] as const;

export function parseRoute(search: string): Route {
  const params = new URLSearchParams(search);
  const view = params.get('view');
  const route: Route = { view: VIEWS.includes(view as View) ? (view as View) : 'overview' };
  for (const key of KEYS) {
    if (key === 'view') continue;
    const value = params.get(key);
    if (value) route[key] = value;
  }
  return route;
}

export function routeHref(route: Route): string {
  const params = new URLSearchParams();
  for (const key of KEYS) {
    const value = route[key];
    if (value && !(key === 'view' && value === 'overview')) params.set(key, value);
  }
  const s = params.toString();
  return s ? `?${s}` : location.pathname;
}

/** What every view is given: the route, the device catalogue (or why it is missing), the refresh count. */
export interface ViewProps {
  route: Route;
  devices: DeviceSummary[] | undefined;
  devicesError: ApiError | undefined;
  refresh: number;
}

const CHANGED = 'dashboard:route';

/** Goes to `route`: a new history entry, or (`replace`) a correction of the current one. */
export function navigate(route: Route, replace = false) {
  const href = routeHref(route);
  if (href === `${location.search}` || (href === location.pathname && location.search === '')) return;
  if (replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  window.dispatchEvent(new Event(CHANGED));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.search));
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.search));
    window.addEventListener('popstate', update);
    window.addEventListener(CHANGED, update);
    return () => {
      window.removeEventListener('popstate', update);
      window.removeEventListener(CHANGED, update);
    };
  }, []);
  return route;
}

/** The route of a tab: the view with the factory kept, every other filter dropped. */
export function viewRoute(view: View, from: Route): Route {
  return { view, factory: from.factory };
}

/** An `<a>` to a route: a real link (open in a new tab works) that navigates in place on a plain click. */
export function linkProps(route: Route): { href: string; onClick: (e: MouseEvent) => void } {
  return {
    href: routeHref(route),
    onClick: (e: MouseEvent) => {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      navigate(route);
    },
  };
}
