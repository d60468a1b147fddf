import { useEffect, useState } from 'preact/hooks';
import type { FileDetail, FileRow } from '../../../functions/contracts/api.js';
import { bytes, dateTime, duration, num, pct } from '../format.js';
import { linkProps, navigate, type Route } from '../route.js';
import { rangeParams, resolveRange, TimeRangePicker } from '../time-range.js';
import { ErrorBanner, fileStatus, Loading, Panel, StatusBadge, TableFoot } from '../ui.js';
import { usePages } from './paging.js';

const PAGE = 50;
const REJECTS_PAGE = 200;
const STATUSES = ['complete', 'incomplete', 'quarantined', 'rejects'] as const;

export function FilesView(props: { route: Route; refresh: number }) {
  return props.route.file ? (
    <FileView id={props.route.file} route={props.route} refresh={props.refresh} />
  ) : (
    <FileList route={props.route} refresh={props.refresh} />
  );
}

function FileList({ route, refresh }: { route: Route; refresh: number }) {
  const range = resolveRange(route, 'all', undefined);
  const pages = usePages<FileRow>(
    '/api/files',
    { factory: route.factory, status: route.status, q: route.q, ...rangeParams(range), limit: PAGE },
    refresh,
  );
  const [q, setQ] = useState(route.q ?? '');
  useEffect(() => setQ(route.q ?? ''), [route.q]);
  const search = (e: Event) => {
    e.preventDefault();
    navigate({ ...route, q: q.trim() || undefined });
  };

  return (
    <div class="view view-files" data-testid="files">
      <div class="toolbar">
        <fieldset class="segmented">
          <legend class="sr-only">Status</legend>
          {[undefined, ...STATUSES].map((s) => (
            <button
              type="button"
              key={s ?? 'all'}
              class={route.status === s ? 'active' : ''}
              aria-pressed={route.status === s}
              data-testid="files-status"
              data-status={s ?? 'all'}
              onClick={() => navigate({ ...route, status: s })}
            >
              {s === undefined ? 'All' : s === 'rejects' ? 'With rejects' : s[0]?.toUpperCase() + s.slice(1)}
            </button>
          ))}
        </fieldset>
        <form class="field" onSubmit={search}>
          <input
            type="search"
            data-testid="files-q"
            placeholder="Search file names…"
            size={28}
            value={q}
            onInput={(e) => setQ(e.currentTarget.value)}
          />
          <button type="submit">Search</button>
        </form>
        <TimeRangePicker
          route={route}
          range={range}
          presets={['24h', '7d', '30d', 'all']}
          anchorLabel="now"
        />
      </div>
      <ErrorBanner error={pages.error} />
      <section class="panel">
        <div class="table-wrap table-page">
          <table class="table files-table" data-testid="files-table" data-rows={pages.items.length}>
            <thead>
              <tr>
                <th>Uploaded</th>
                <th>File</th>
                <th>Status</th>
                <th>Format</th>
                <th>Table</th>
                <th class="right">Lines</th>
                <th class="right">Rejected</th>
                <th class="right">Rows loaded</th>
                <th class="right">Size</th>
                <th class="right">Upload → warehouse</th>
              </tr>
            </thead>
            <tbody>
              {pages.items.map((f) => (
                <tr key={f.id} data-testid="file-row" data-id={f.id} data-status={fileStatus(f)}>
                  <td class="nowrap">{dateTime(f.raw_created_at)}</td>
                  <td class="ellipsis key-cell" title={f.source_key}>
                    <a {...linkProps({ ...route, file: f.id })}>{f.source_key}</a>
                  </td>
                  <td class="nowrap">
                    <StatusBadge status={fileStatus(f)} title={f.quarantine_reason ?? undefined} />
                  </td>
                  <td>{f.format ?? '–'}</td>
                  <td>{f.table ?? '–'}</td>
                  <td class="right">{num(f.lines_total)}</td>
                  <td class={`right ${f.lines_rejected ? 'text-warn' : ''}`}>{num(f.lines_rejected)}</td>
                  <td class="right">{num(f.rows_loaded)}</td>
                  <td class="right">{bytes(f.bytes)}</td>
                  <td class="right">{duration(f.end_to_end_seconds)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <TableFoot pages={pages} noun="file" id="files" page={PAGE} empty="No files match these filters." />
      </section>
    </div>
  );
}

function FileView({ id, route, refresh }: { id: string; route: Route; refresh: number }) {
  const [detail, setDetail] = useState<FileDetail | undefined>(undefined);
  useEffect(() => setDetail(undefined), [id]);
  const rejects = usePages<FileDetail['rejects']['items'][number], FileDetail>(
    `/api/files/${encodeURIComponent(id)}`,
    { limit: REJECTS_PAGE },
    refresh,
    (answer) => answer.rejects,
    setDetail,
  );
  const back = linkProps({ ...route, file: undefined });
  const file = detail?.file;

  return (
    <div class="view view-file" data-testid="file-detail" data-id={id}>
      <div class="toolbar">
        <a class="button" {...back} data-testid="file-back">
          ← Files
        </a>
        {file && (
          <h1 class="file-title" title={file.source_key}>
            {file.source_key}
          </h1>
        )}
        {file && <StatusBadge status={fileStatus(file)} />}
        {file?.lines_rejected ? <StatusBadge status="rejects" /> : null}
      </div>
      <ErrorBanner error={rejects.error} />
      {!file && !rejects.error && <Loading />}
      {file?.quarantine_reason && (
        <div class="banner banner-error" data-testid="quarantine-reason">
          Quarantined: {file.quarantine_reason}
        </div>
      )}
      {file && detail && (
        <div class="grid-1-1">
          <Panel title="Manifest" testid="file-manifest">
            <dl class="figures">
              <Figure label="Lines" value={num(file.lines_total)} />
              <Figure label="Lines loaded" value={num(file.lines_loaded)} />
              <Figure
                label="Rejected"
                value={`${num(file.lines_rejected)} (${pct(file.lines_rejected ?? 0, file.lines_total ?? 0)})`}
                tone={file.lines_rejected ? 'warn' : undefined}
              />
              <Figure label="Blank lines" value={num(file.lines_blank)} />
              <Figure label="Header lines" value={num(file.lines_header)} />
              <Figure label="Rows expected" value={num(file.rows_expected)} />
              <Figure
                label="Rows loaded"
                value={num(file.rows_loaded)}
                tone={
                  file.rows_expected !== null && file.rows_loaded < file.rows_expected ? 'warn' : undefined
                }
              />
              <Figure
                label="Complete"
                value={file.complete ? 'yes' : 'no'}
                tone={file.complete ? undefined : 'warn'}
              />
              <Figure label="Format" value={file.format ?? '–'} />
              <Figure label="Table" value={file.table ?? '–'} />
              <Figure label="Size" value={bytes(file.bytes)} />
              <Figure label="Factory" value={file.factory} />
              <Figure label="Uploaded" value={dateTime(file.raw_created_at, true)} />
              <Figure label="Loaded at" value={dateTime(file.loaded_at, true)} />
              <Figure label="ETL time" value={duration(file.etl_seconds)} />
              <Figure label="Upload → warehouse" value={duration(file.end_to_end_seconds)} />
            </dl>
            <p class="muted small mono ellipsis" title={`ETag ${file.source_etag} · id ${file.id}`}>
              ETag {file.source_etag} · id {file.id}
            </p>
          </Panel>
          <Panel title={`Outputs (${detail.outputs.length})`} testid="file-outputs">
            {detail.outputs.length === 0 ? (
              <p class="muted">No outputs.</p>
            ) : (
              <div class="table-wrap table-scroll" style={{ maxHeight: '250px' }}>
                <table class="table">
                  <thead>
                    <tr>
                      <th>Lake object</th>
                      <th>Kind</th>
                      <th class="right">Rows</th>
                      <th>Loaded</th>
                    </tr>
                  </thead>
                  <tbody>
                    {detail.outputs.map((o) => (
                      <tr key={o.lake_key} data-testid="file-output-row">
                        <td class="mono small break">{o.lake_key}</td>
                        <td>{o.kind}</td>
                        <td class="right">{num(o.rows)}</td>
                        <td class="nowrap">{dateTime(o.loaded_at)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Panel>
        </div>
      )}
      {file && (
        <Panel
          title={`Rejected lines (${num(file.lines_rejected)})`}
          actions={<span class="muted">the line as it was in the file, and why it was not loaded</span>}
          testid="file-rejects"
        >
          {rejects.items.length === 0 && !rejects.loading ? (
            <p class="muted" data-testid="empty">
              No rejected lines.
            </p>
          ) : (
            <div class="table-wrap">
              <table class="table rejects-table" data-testid="rejects-table" data-rows={rejects.items.length}>
                <thead>
                  <tr>
                    <th class="right col-line">Line</th>
                    <th class="col-reason">Reason</th>
                    <th>Raw line</th>
                  </tr>
                </thead>
                <tbody>
                  {rejects.items.map((r) => (
                    <tr key={r.line} data-testid="reject-row" data-line={r.line}>
                      <td class="right mono nowrap">
                        {r.lines > 1 ? `${r.line}–${r.line + r.lines - 1}` : r.line}
                      </td>
                      <td class="reason">{r.reason}</td>
                      <td>
                        <pre class="raw">{r.raw}</pre>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <div class="table-foot">
            <span class="muted" data-testid="rejects-count">
              {num(rejects.items.length)} shown
              {rejects.nextCursor ? ', more available' : ''}
            </span>
            {rejects.nextCursor && (
              <button
                type="button"
                data-testid="rejects-more"
                disabled={rejects.loading}
                onClick={rejects.more}
              >
                Load {REJECTS_PAGE} more
              </button>
            )}
          </div>
        </Panel>
      )}
    </div>
  );
}

function Figure(props: { label: string; value: string; tone?: 'warn' | undefined }) {
  return (
    <div class="figure">
      <dt>{props.label}</dt>
      <dd class={props.tone === 'warn' ? 'text-warn' : ''}>{props.value}</dd>
    </div>
  );
}
