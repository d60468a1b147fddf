import { useEffect, useState } from 'preact/hooks';
import type { EventRow } from '../../../functions/contracts/api.js';
import { dateTime, iso, SEVERITY_LABELS, severityClass } from '../format.js';
import { linkProps, navigate, type ViewProps } from '../route.js';
import { rangeParams, resolveRange, TimeRangePicker } from '../time-range.js';
import { ErrorBanner, SeverityBadge, TableFoot } from '../ui.js';
import { latestSeen } from './health.js';
import { usePages } from './paging.js';

const PAGE = 100;
const HOUR = 3_600_000;

export function EventsView(props: ViewProps) {
  const { route } = props;
  const devices = (props.devices ?? []).filter((d) => !route.factory || d.factory === route.factory);
  const range = resolveRange(route, 'all', latestSeen(props.devices, route.factory));
  const params = {
    factory: route.factory,
    device: route.device,
    severity: route.severity,
    code: route.code,
    ...rangeParams(range),
    limit: PAGE,
  };
  const pages = usePages<EventRow>('/api/events', params, props.refresh);

  const [code, setCode] = useState(route.code ?? '');
  useEffect(() => setCode(route.code ?? ''), [route.code]);
  const applyCode = (e: Event) => {
    e.preventDefault();
    navigate({ ...route, code: code.trim() || undefined });
  };

  return (
    <div class="view view-events" data-testid="events">
      <div class="toolbar">
        <label class="field">
          <span>Device</span>
          <select
            data-testid="events-device"
            value={route.device ?? ''}
            onChange={(e) => navigate({ ...route, device: e.currentTarget.value || undefined })}
          >
            <option value="">All devices</option>
            {devices.map((d) => (
              <option key={`${d.factory}/${d.device}`} value={d.device}>
                {route.factory ? '' : `${d.factory} / `}
                {d.device}
              </option>
            ))}
            {route.device && !devices.some((d) => d.device === route.device) && (
              <option value={route.device}>{route.device}</option>
            )}
          </select>
        </label>
        <label class="field">
          <span>Severity</span>
          <select
            data-testid="events-severity"
            value={route.severity ?? ''}
            onChange={(e) => navigate({ ...route, severity: e.currentTarget.value || undefined })}
          >
            <option value="">Any</option>
            {SEVERITY_LABELS.slice(0, 7).map((name, level) => (
              <option key={name} value={name}>
                {level === 0 ? name : `${name} or worse`}
              </option>
            ))}
          </select>
        </label>
        <form class="field" onSubmit={applyCode}>
          <span>Code</span>
          <input
            type="search"
            data-testid="events-code"
            placeholder="e.g. E1001"
            size={9}
            value={code}
            onInput={(e) => setCode(e.currentTarget.value)}
            onBlur={applyCode}
          />
        </form>
        <TimeRangePicker
          route={route}
          range={range}
          presets={['1h', '6h', '24h', '7d', 'all']}
          anchorLabel="the latest reading"
        />
      </div>
      <ErrorBanner error={pages.error} />
      <section class="panel">
        <div class="table-wrap table-page">
          <table class="table events-table" data-testid="events-table" data-rows={pages.items.length}>
            <thead>
              <tr>
                <th class="col-ts">Time</th>
                <th class="col-device">Device</th>
                <th class="col-sev">Severity</th>
                <th class="col-code">Code</th>
                <th class="col-cat">Category</th>
                <th>Message</th>
                <th>Recommended action</th>
              </tr>
            </thead>
            <tbody>
              {pages.items.map((e, i) => (
                <tr
                  key={`${e.source_key}:${e.source_line}:${i}`}
                  class={`row-${severityClass(e.effective_severity ?? e.severity)}`}
                  data-testid="event-row"
                  data-severity={e.effective_severity ?? e.severity ?? ''}
                  data-code={e.code ?? ''}
                  data-device={e.device ?? ''}
                >
                  <td class="nowrap" title={e.ts}>
                    {dateTime(e.ts, true)}
                  </td>
                  <td class="nowrap">
                    {e.device ? (
                      <a
                        title="Readings around this event"
                        {...linkProps({
                          view: 'readings',
                          factory: e.factory,
                          device: e.device,
                          from: iso(Date.parse(e.ts) - HOUR),
                          to: iso(Date.parse(e.ts) + HOUR),
                        })}
                      >
                        {e.device}
                      </a>
                    ) : (
                      '–'
                    )}
                  </td>
                  <td>
                    <SeverityBadge
                      severity={e.effective_severity ?? e.severity}
                      name={
                        e.effective_severity !== null && e.effective_severity !== e.severity
                          ? SEVERITY_LABELS[e.effective_severity]
                          : e.severity_name
                      }
                    />
                  </td>
                  <td title={e.code_description ?? ''}>{e.code ? <code>{e.code}</code> : '–'}</td>
                  <td>{e.category ?? '–'}</td>
                  <td class="wrap">
                    {e.message ?? <span class="muted">–</span>}
                    <div class="muted small">
                      {e.component ? `${e.component} · ` : ''}
                      <a
                        title="The file this line came from"
                        {...linkProps({ view: 'files', factory: e.factory, q: e.source_key })}
                      >
                        {e.source_key.slice(e.source_key.lastIndexOf('/') + 1)}:{e.source_line}
                      </a>
                    </div>
                  </td>
                  <td class="wrap">{e.recommended_action ?? <span class="muted">–</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <TableFoot
          pages={pages}
          noun="event"
          id="events"
          page={PAGE}
          empty="No events match these filters."
        />
      </section>
    </div>
  );
}
