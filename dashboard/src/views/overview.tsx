import { useEffect, useMemo, useState } from 'preact/hooks';
import uPlot from 'uplot';
import type { DeviceSummary, FactoryOverview, Overview } from '../../../functions/contracts/api.js';
import { useApi } from '../api.js';
import { AXIS, compact, TIME_AXIS, TIME_SERIES, UPlotChart } from '../chart.js';
import { ago, bytes, dateTime, duration, num, pct, scoreColor } from '../format.js';
import { linkProps, type Route, type ViewProps } from '../route.js';
import { Empty, ErrorBanner, Loading, Panel, SeverityBadge, Tile } from '../ui.js';

const AUTO_REFRESH_MS = 30_000;

/** A queue whose name says it is a dead-letter queue. */
export const isDeadLetter = (queue: string) => /dlq|dead/i.test(queue);

function totals(factories: FactoryOverview[]) {
  const t = {
    files: { total: 0, complete: 0, incomplete: 0, quarantined: 0, withRejects: 0 },
    lines: { total: 0, loaded: 0, rejected: 0 },
    rows: { readings: 0, events: 0 },
  };
  for (const f of factories) {
    for (const k of Object.keys(t.files) as (keyof typeof t.files)[]) t.files[k] += f.files[k];
    for (const k of Object.keys(t.lines) as (keyof typeof t.lines)[]) t.lines[k] += f.lines[k];
    for (const k of Object.keys(t.rows) as (keyof typeof t.rows)[]) t.rows[k] += f.rows[k];
  }
  return t;
}

export function OverviewView({ route, devices, refresh }: ViewProps) {
  const [auto, setAuto] = useState(0);
  useEffect(() => {
    const id = window.setInterval(() => {
      if (!document.hidden) setAuto((a) => a + 1);
    }, AUTO_REFRESH_MS);
    return () => window.clearInterval(id);
  }, []);
  const { data, error, loading } = useApi<Overview>(
    '/api/overview',
    { factory: route.factory },
    `${refresh}.${auto}`,
  );

  if (!data) return error ? <ErrorBanner error={error} /> : <Loading />;
  const t = totals(data.factories);
  const single = data.factories.length === 1 ? data.factories[0] : undefined;
  const worstP95 = data.factories.reduce<FactoryOverview | undefined>(
    (w, f) => (f.lagSeconds.p95 !== null && (!w || (w.lagSeconds.p95 ?? 0) < f.lagSeconds.p95) ? f : w),
    undefined,
  );
  const deadLetters = (data.queues ?? []).filter((q) => isDeadLetter(q.queue) && q.waiting + q.inFlight > 0);
  const files = (status?: string): Route => ({ view: 'files', factory: route.factory, status });

  return (
    <div class="view view-overview" data-testid="overview" data-stale={loading ? 'true' : 'false'}>
      <ErrorBanner error={error} />
      {deadLetters.map((q) => (
        <div class="banner banner-error" role="alert" key={q.queue} data-testid="dlq-alert">
          Dead-letter queue <b>{q.queue}</b> holds {num(q.waiting + q.inFlight)} message
          {q.waiting + q.inFlight === 1 ? '' : 's'}: those inputs failed every retry and need a look.
        </div>
      ))}
      <div class="tiles">
        <Tile
          label="Files"
          value={num(t.files.total)}
          testid="tile-files"
          tone={t.files.quarantined > 0 ? 'bad' : t.files.incomplete > 0 ? 'warn' : 'ok'}
          detail={
            <>
              <a {...linkProps(files('complete'))}>{num(t.files.complete)} complete</a> ·{' '}
              <a {...linkProps(files('incomplete'))}>{num(t.files.incomplete)} incomplete</a> ·{' '}
              <a {...linkProps(files('quarantined'))} class={t.files.quarantined ? 'text-bad' : ''}>
                {num(t.files.quarantined)} quarantined
              </a>{' '}
              · <a {...linkProps(files('rejects'))}>{num(t.files.withRejects)} with rejects</a>
            </>
          }
        />
        <Tile
          label="Lines loaded"
          value={num(t.lines.loaded)}
          testid="tile-lines"
          tone={t.lines.rejected > 0 ? 'warn' : 'ok'}
          detail={
            <>
              of {num(t.lines.total)} ·{' '}
              <span class={t.lines.rejected ? 'text-warn' : ''}>
                {num(t.lines.rejected)} rejected ({pct(t.lines.rejected, t.lines.total)})
              </span>
            </>
          }
        />
        <Tile
          label="Warehouse rows"
          value={num(t.rows.readings + t.rows.events)}
          testid="tile-rows"
          detail={`${num(t.rows.readings)} readings · ${num(t.rows.events)} events`}
        />
        <Tile
          label="End-to-end lag"
          testid="tile-lag"
          value={
            single ? (
              <>
                <span data-testid="lag-p50">{duration(single.lagSeconds.p50)}</span>
                <small> p50</small>
              </>
            ) : (
              <>
                <span data-testid="lag-p95">{duration(worstP95?.lagSeconds.p95)}</span>
                <small> worst p95</small>
              </>
            )
          }
          detail={
            single ? (
              <>
                p95 <span data-testid="lag-p95">{duration(single.lagSeconds.p95)}</span> · upload → warehouse
              </>
            ) : (
              `${worstP95?.factory ?? '–'} · upload → warehouse`
            )
          }
        />
        <Tile
          label="Warehouse updated"
          testid="tile-warehouse"
          value={
            <span title={dateTime(data.warehouse.updatedAt, true)}>{ago(data.warehouse.updatedAt)}</span>
          }
          detail={`${dateTime(data.warehouse.updatedAt)} · ${bytes(data.warehouse.bytes)}`}
        />
      </div>

      {data.factories.length > 1 && <FactoryTable factories={data.factories} />}
      {data.factories.length === 0 && <Empty>No files have been loaded yet.</Empty>}

      <div class="grid-2-1">
        <Panel
          title="Throughput"
          actions={
            <span class="muted">
              per {bucketLabel(data.throughput.bucketSeconds)} of upload time, the 48 hours up to the latest
              upload
            </span>
          }
          testid="throughput"
        >
          <ThroughputChart throughput={data.throughput} />
        </Panel>
        <Panel title="Queues" testid="queues">
          <QueueTable queues={data.queues} />
          <p class="muted small">
            Refreshed {dateTime(data.generatedAt, true)} · every {AUTO_REFRESH_MS / 1000} s
          </p>
        </Panel>
      </div>

      <DeviceTable devices={(devices ?? []).filter((d) => !route.factory || d.factory === route.factory)} />
    </div>
  );
}

function FactoryTable({ factories }: { factories: FactoryOverview[] }) {
  return (
    <Panel title="Pipeline status per factory" testid="factory-table">
      <div class="table-wrap">
        <table class="table num-right">
          <thead>
            <tr>
              <th class="left">Factory</th>
              <th>Files</th>
              <th>Complete</th>
              <th>Incomplete</th>
              <th>Quarantined</th>
              <th>With rejects</th>
              <th>Lines loaded</th>
              <th>Rejected</th>
              <th>Readings</th>
              <th>Events</th>
              <th>Lag p50</th>
              <th>Lag p95</th>
              <th>Last loaded</th>
            </tr>
          </thead>
          <tbody>
            {factories.map((f) => (
              <tr key={f.factory} data-testid="factory-row" data-factory={f.factory}>
                <td class="left">
                  <a {...linkProps({ view: 'overview', factory: f.factory })}>{f.factory}</a>
                </td>
                <td>{num(f.files.total)}</td>
                <td>{num(f.files.complete)}</td>
                <td class={f.files.incomplete ? 'text-warn' : ''}>{num(f.files.incomplete)}</td>
                <td class={f.files.quarantined ? 'text-bad' : ''}>
                  <a {...linkProps({ view: 'files', factory: f.factory, status: 'quarantined' })}>
                    {num(f.files.quarantined)}
                  </a>
                </td>
                <td>
                  <a {...linkProps({ view: 'files', factory: f.factory, status: 'rejects' })}>
                    {num(f.files.withRejects)}
                  </a>
                </td>
                <td>{num(f.lines.loaded)}</td>
                <td class={f.lines.rejected ? 'text-warn' : ''}>{num(f.lines.rejected)}</td>
                <td>{num(f.rows.readings)}</td>
                <td>{num(f.rows.events)}</td>
                <td>{duration(f.lagSeconds.p50)}</td>
                <td>{duration(f.lagSeconds.p95)}</td>
                <td title={dateTime(f.lastLoadedAt, true)}>{ago(f.lastLoadedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Panel>
  );
}

type Throughput = Overview['throughput'];

/** `1 min`, `5 min`, `1 h`: a bucket's width. */
function bucketLabel(seconds: number): string {
  return seconds % 3600 === 0
    ? `${seconds / 3600} h`
    : seconds % 60 === 0
      ? `${seconds / 60} min`
      : `${seconds} s`;
}

const count = (_u: uPlot, v: number | null) => (v === null ? '–' : v.toLocaleString('en'));

function throughputOptions(bucketMs: number): Omit<uPlot.Options, 'width' | 'height'> {
  return {
    ms: 1,
    legend: { show: true, live: true },
    cursor: { drag: { x: false, y: false }, points: { size: 6 } },
    scales: {
      // Each bar covers its bucket: from its start to the next.
      x: { time: true, range: (_u, min, max) => [min - bucketMs * 0.1, max + bucketMs * 1.1] },
      rows: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.1] },
      count: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.15] },
    },
    series: [
      TIME_SERIES,
      {
        label: 'Rows loaded',
        scale: 'rows',
        stroke: '#4a6d8c',
        fill: 'rgba(74, 109, 140, 0.55)',
        width: 1,
        // A bar spans its bucket in time (less a small gap), however few buckets there are.
        paths: uPlot.paths.bars?.({
          disp: {
            x0: { unit: 1, values: (u) => u.data[0] as number[] },
            size: { unit: 1, values: (u) => Array.from(u.data[0], () => bucketMs * 0.86) },
          },
        }),
        points: { show: false },
        value: count,
      },
      {
        label: 'Rejected lines',
        scale: 'count',
        stroke: '#c0392b',
        width: 2,
        points: { show: true, size: 5, fill: '#c0392b' },
        value: count,
      },
      {
        label: 'Files',
        scale: 'count',
        stroke: '#7a8794',
        width: 1.5,
        dash: [4, 3],
        show: false,
        value: count,
      },
    ],
    axes: [
      TIME_AXIS,
      { ...AXIS, scale: 'rows', size: 52, values: (_u, ticks) => ticks.map(compact) },
      {
        ...AXIS,
        scale: 'count',
        side: 1,
        size: 44,
        grid: { show: false },
        values: (_u, ticks) => ticks.map(compact),
      },
    ],
  };
}

function ThroughputChart({ throughput }: { throughput: Throughput }) {
  const bucketMs = throughput.bucketSeconds * 1000;
  const options = useMemo(() => throughputOptions(bucketMs), [bucketMs]);
  const data = useMemo<uPlot.AlignedData>(() => {
    const sorted = [...throughput.buckets].sort((a, b) => a.t - b.t);
    return [
      sorted.map((b) => b.t),
      sorted.map((b) => b.rows),
      sorted.map((b) => b.rejected),
      sorted.map((b) => b.files),
    ];
  }, [throughput]);
  if (throughput.buckets.length === 0) {
    return (
      <div class="chart-empty" data-testid="throughput-chart" data-points="0">
        No uploads in the last 48 hours with data.
      </div>
    );
  }
  return (
    <UPlotChart
      options={options}
      data={data}
      height={210}
      testid="throughput-chart"
      attrs={{
        'data-points': throughput.buckets.length,
        'data-bucket-seconds': throughput.bucketSeconds,
        'data-rows': throughput.buckets.reduce((s, b) => s + b.rows, 0),
        'data-rejected': throughput.buckets.reduce((s, b) => s + b.rejected, 0),
      }}
    />
  );
}

function QueueTable({ queues }: { queues: Overview['queues'] }) {
  if (queues === null) return <p class="muted">Queue depths are not available from this deployment.</p>;
  if (queues.length === 0) return <p class="muted">No queues.</p>;
  return (
    <table class="table num-right compact-table">
      <thead>
        <tr>
          <th class="left">Queue</th>
          <th>Waiting</th>
          <th>In flight</th>
        </tr>
      </thead>
      <tbody>
        {queues.map((q) => {
          const dlq = isDeadLetter(q.queue);
          const alert = dlq && q.waiting + q.inFlight > 0;
          return (
            <tr
              key={q.queue}
              class={alert ? 'row-alert' : ''}
              data-testid="queue-row"
              data-queue={q.queue}
              data-dlq={dlq ? 'true' : 'false'}
              data-depth={q.waiting + q.inFlight}
            >
              <td class="left">
                {q.queue}
                {dlq && <span class={`badge ${alert ? 'badge-bad' : 'badge-neutral'} ml`}>DLQ</span>}
              </td>
              <td>{num(q.waiting)}</td>
              <td>{num(q.inFlight)}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function DeviceTable({ devices }: { devices: DeviceSummary[] }) {
  if (devices.length === 0) return null;
  const many = new Set(devices.map((d) => d.factory)).size > 1;
  return (
    <Panel title="Devices" testid="device-table">
      <div class="table-wrap">
        <table class="table">
          <thead>
            <tr>
              <th>Device</th>
              <th>Line</th>
              <th>Criticality</th>
              <th class="right">Health</th>
              <th>Last seen</th>
              <th class="right">Anomalies 24 h</th>
              <th class="right">Open alarms</th>
              <th class="col-last-alarm">Last alarm</th>
            </tr>
          </thead>
          <tbody>
            {devices.map((d) => (
              <tr key={`${d.factory}/${d.device}`} data-testid="device-row" data-device={d.device}>
                <td>
                  <a {...linkProps({ view: 'readings', factory: d.factory, device: d.device })}>
                    {many ? `${d.factory} / ` : ''}
                    {d.device}
                  </a>
                  {!d.registered && (
                    <span class="badge badge-neutral ml" title="Seen in the data, not in devices.yaml">
                      unregistered
                    </span>
                  )}
                  {d.model && <div class="muted small">{d.model}</div>}
                </td>
                <td>{d.line ?? '–'}</td>
                <td>
                  {d.criticality ? <span class={`crit crit-${d.criticality}`}>{d.criticality}</span> : '–'}
                </td>
                <td class="right">
                  {d.health ? (
                    <span
                      class="score"
                      style={{ background: scoreColor(d.health.score) }}
                      title={`Hour from ${dateTime(d.health.hour)}`}
                    >
                      {Math.round(d.health.score)}
                    </span>
                  ) : (
                    '–'
                  )}
                </td>
                <td title={dateTime(d.lastSeen, true)}>{ago(d.lastSeen)}</td>
                <td class={`right ${d.anomalies24h ? 'text-warn' : ''}`}>{num(d.anomalies24h)}</td>
                <td class={`right ${d.openAlarms ? 'text-bad' : ''}`}>
                  <a
                    {...linkProps({
                      view: 'events',
                      factory: d.factory,
                      device: d.device,
                      severity: 'error',
                    })}
                  >
                    {num(d.openAlarms)}
                  </a>
                </td>
                <td class="ellipsis">
                  {d.lastAlarm ? (
                    <>
                      <SeverityBadge severity={d.lastAlarm.severity} /> <code>{d.lastAlarm.code ?? ''}</code>{' '}
                      <span title={d.lastAlarm.message ?? ''}>{d.lastAlarm.message}</span>{' '}
                      <span class="muted">{ago(d.lastAlarm.ts)}</span>
                    </>
                  ) : (
                    <span class="muted">none</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Panel>
  );
}
