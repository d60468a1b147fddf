import type { ComponentChildren } from 'preact';
import type { ApiError } from './api.js';
import { SEVERITY_LABELS, severityClass } from './format.js';
import type { Pages } from './views/paging.js';

export function Panel(props: {
  title?: ComponentChildren;
  actions?: ComponentChildren;
  class?: string;
  testid?: string;
  children: ComponentChildren;
}) {
  return (
    <section class={`panel ${props.class ?? ''}`} data-testid={props.testid}>
      {(props.title || props.actions) && (
        <header class="panel-head">
          <h2>{props.title}</h2>
          {props.actions && <div class="panel-actions">{props.actions}</div>}
        </header>
      )}
      {props.children}
    </section>
  );
}

/** An API error as the operator should read it; 404 "no warehouse yet" is a state, not a failure. */
export function ErrorBanner({ error }: { error: ApiError | undefined }) {
  if (!error) return null;
  const hint =
    error.status === 503
      ? 'The API is not ready (or not configured).'
      : error.status === 0
        ? 'Check the network connection to the pipeline.'
        : error.status === 400
          ? 'The API did not accept the request.'
          : undefined;
  return (
    <div
      class={`banner ${error.status === 404 ? 'banner-info' : 'banner-error'}`}
      role="alert"
      data-testid="error"
    >
      {error.status === 404 ? 'Nothing here yet: ' : hint ? `${hint} ` : ''}
      <span class="banner-message">{error.message}</span>
    </div>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <div class="placeholder" data-testid="loading">
      {label}
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return (
    <div class="placeholder" data-testid="empty">
      {children}
    </div>
  );
}

export function SeverityBadge({ severity, name }: { severity: number | null; name?: string | null }) {
  const label = name ?? (severity === null ? '–' : (SEVERITY_LABELS[severity] ?? String(severity)));
  return <span class={`badge ${severityClass(severity)}`}>{label}</span>;
}

const STATUS_CLASS: Record<string, string> = {
  complete: 'badge-ok',
  loaded: 'badge-ok',
  incomplete: 'badge-warn',
  quarantined: 'badge-bad',
  rejects: 'badge-warn',
};

export function StatusBadge({ status, title }: { status: string; title?: string | undefined }) {
  return (
    <span class={`badge ${STATUS_CLASS[status] ?? 'badge-neutral'}`} title={title}>
      {status}
    </span>
  );
}

/** A file's status as the filters name it: `loaded` is complete or incomplete by its rows. */
export function fileStatus(file: { status: string; complete: boolean }): string {
  return file.status === 'loaded' ? (file.complete ? 'complete' : 'incomplete') : file.status;
}

export function Tile(props: {
  label: string;
  value: ComponentChildren;
  detail?: ComponentChildren;
  tone?: 'ok' | 'warn' | 'bad';
  testid?: string;
}) {
  return (
    <div class={`tile ${props.tone ? `tile-${props.tone}` : ''}`} data-testid={props.testid}>
      <div class="tile-label">{props.label}</div>
      <div class="tile-value">{props.value}</div>
      {props.detail && <div class="tile-detail">{props.detail}</div>}
    </div>
  );
}

/**
 * A paged table's foot: a placeholder while loading or when nothing matched, how many rows are shown
 * and whether there are more, and "Load more" while there are (`<id>-count`, `<id>-more`).
 */
export function TableFoot(props: {
  pages: Pages<unknown>;
  noun: string;
  id: string;
  page: number;
  empty: string;
}) {
  const { pages, noun, id, page } = props;
  return (
    <>
      {pages.loading && <Loading />}
      {!pages.loading && !pages.error && pages.items.length === 0 && (
        <div class="placeholder" data-testid="empty">
          {props.empty}
        </div>
      )}
      <div class="table-foot">
        <span class="muted" data-testid={`${id}-count`}>
          {pages.items.length} {noun}
          {pages.items.length === 1 ? '' : 's'}
          {pages.nextCursor ? ', more available' : pages.items.length ? ', all shown' : ''}
        </span>
        {pages.nextCursor && (
          <button type="button" data-testid={`${id}-more`} disabled={pages.loading} onClick={pages.more}>
            Load {page} more
          </button>
        )}
      </div>
    </>
  );
}
