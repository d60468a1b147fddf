import { useEffect, useMemo, useRef } from 'preact/hooks';
import type uPlot from 'uplot';
import type { DeviceSummary, MetricSummary, ReadingSeries } from '../../../functions/contracts/api.js';
import { itemsOf, type List, useApi } from '../api.js';
import { AXIS, compact, TIME_AXIS, TIME_SERIES, UPlotChart } from '../chart.js';
import { dateTime, iso, num } from '../format.js';
import { useWidth } from '../hooks.js';
import { linkProps, navigate, type ViewProps } from '../route.js';
import { describeRange, rangeParams, resolveRange, TimeRangePicker } from '../time-range.js';
import { Empty, ErrorBanner, Loading, Panel } from '../ui.js';

const MAX_POINTS = 5000; // the contract's MAX_POINTS
const MIN_SPAN_MS = 2000;
const CHART_HEIGHT = 340;

/** Points to ask for: about two per pixel column (M4 keeps 4 per bucket), in steps so a resize rarely refetches. */
export function pointsFor(width: number): number {
  return Math.max(500, Math.min(MAX_POINTS, Math.ceil((width * 2) / 500) * 500));
}

/**
 * A gap between two points wider than this breaks the line: 5 median spacings, but at least 1 % of
 * the range (M4's buckets are 4 points to (to - from) / (points / 4), so a full series never breaks).
 */
function gapThreshold(series: ReadingSeries): number {
  const xs = series.points.map((p) => p[0]);
  const gaps = xs
    .slice(1)
    .map((x, i) => x - xs[i]!)
    .sort((a, b) => a - b);
  const median = gaps[Math.floor(gaps.length / 2)] ?? 0;
  return Math.max(5 * median, (series.to - series.from) / 100);
}

/** Indices of values with no drawn neighbour (a gap or the edge on both sides; `undefined` is skipped). */
export function isolated(values: (number | null | undefined)[]): number[] | null {
  const out: number[] = [];
  let prev: number | null | undefined = null; // the last value that was not undefined
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === undefined) continue;
    if (v !== null && prev === null) {
      let j = i + 1;
      while (j < values.length && values[j] === undefined) j++;
      if (j >= values.length || values[j] === null) out.push(i);
    }
    prev = v;
  }
  return out.length ? out : null;
}

/**
 * The line and the anomalies on one time axis (uPlot wants aligned columns). On the line, `undefined`
 * where only an anomaly is (uPlot draws across it) and `null` in a gap in the data (uPlot breaks the
 * line there rather than drawing a straight line across hours without readings).
 */
export function alignSeries(series: ReadingSeries): uPlot.AlignedData {
  const points = series.points;
  const anomalies = [...series.anomalies].sort((a, b) => a[0] - b[0]);
  const threshold = gapThreshold(series);
  const xs: number[] = [];
  const values: (number | null | undefined)[] = [];
  const marks: (number | null)[] = [];
  let i = 0;
  let j = 0;
  let lastPoint: number | undefined;
  while (i < points.length || j < anomalies.length) {
    const p = points[i];
    const a = anomalies[j];
    if (p && lastPoint !== undefined && p[0] - lastPoint > threshold && (!a || p[0] <= a[0])) {
      xs.push((xs[xs.length - 1]! + p[0]) / 2); // after an anomaly in the gap, if there was one
      values.push(null);
      marks.push(null);
      lastPoint = undefined;
      continue;
    }
    if (p && (!a || p[0] < a[0])) {
      xs.push(p[0]);
      values.push(p[1]);
      marks.push(null);
      lastPoint = p[0];
      i++;
    } else if (a && (!p || a[0] < p[0])) {
      xs.push(a[0]);
      values.push(undefined);
      marks.push(a[1]);
      j++;
    } else if (p && a) {
      xs.push(p[0]);
      values.push(p[1]);
      marks.push(a[1]);
      lastPoint = p[0];
      i++;
      j++;
    }
  }
  return [xs, values, marks] as uPlot.AlignedData;
}

function groupByLine(devices: DeviceSummary[]): [string, DeviceSummary[]][] {
  const groups = new Map<string, DeviceSummary[]>();
  for (const d of devices) {
    const line = d.line ?? 'No line';
    groups.set(line, [...(groups.get(line) ?? []), d]);
  }
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }));
}

export function ReadingsView(props: ViewProps) {
  const { route, devices } = props;
  const inFactory = useMemo(
    () =>
      (devices ?? [])
        .filter((d) => !route.factory || d.factory === route.factory)
        .sort((a, b) => a.device.localeCompare(b.device, 'en', { numeric: true })),
    [devices, route.factory],
  );
  // A device named in the URL without its factory: its factory from the catalogue.
  const factory = route.factory ?? (devices ?? []).find((d) => d.device === route.device)?.factory;

  useEffect(() => {
    if (!devices) return;
    if (!route.device || !factory) {
      const first = inFactory[0];
      if (first) navigate({ ...route, factory: first.factory, device: first.device }, true);
    } else if (!route.factory) {
      navigate({ ...route, factory }, true);
    }
  }, [devices, route, factory, inFactory]);

  const metrics = useApi<List<MetricSummary>>(
    factory && route.device ? '/api/metrics' : null,
    { factory, device: route.device },
    props.refresh,
  );
  const metricList = itemsOf(metrics.data)?.filter((m) => m.device === route.device && m.factory === factory);
  const metric = metricList?.find((m) => m.metric === route.metric);

  useEffect(() => {
    if (!metricList || metrics.loading) return;
    if (!metric && metricList[0]) navigate({ ...route, metric: metricList[0].metric }, true);
  }, [metricList, metric, metrics.loading, route]);

  const anchor = metric ? Date.parse(metric.last) : undefined;
  const range = resolveRange(route, '24h', anchor);
  const [chartBox, width] = useWidth<HTMLDivElement>();
  const ready = Boolean(
    factory && route.device && route.metric && (metric || range.preset === undefined) && width,
  );
  const readings = useApi<ReadingSeries>(
    ready ? '/api/readings' : null,
    { factory, device: route.device, metric: route.metric, ...rangeParams(range), points: pointsFor(width) },
    props.refresh,
  );

  const zoom = (from: number, to: number) => {
    // Whole seconds: tidy URLs, and nothing a chart could show is lost.
    let a = Math.floor(from / 1000) * 1000;
    let b = Math.ceil(to / 1000) * 1000;
    if (b - a < MIN_SPAN_MS) {
      const mid = (a + b) / 2;
      a = Math.floor(mid - MIN_SPAN_MS / 2);
      b = Math.ceil(mid + MIN_SPAN_MS / 2);
    }
    navigate({ ...route, range: undefined, from: iso(a), to: iso(b) });
  };
  const series = readings.data;
  const zoomOut = () => {
    if (!series) return;
    const span = series.to - series.from;
    zoom(series.from - span, series.to + span);
  };

  if (devices && inFactory.length === 0)
    return <Empty>No devices{route.factory ? ` in ${route.factory}` : ''} yet.</Empty>;

  return (
    <div class="view view-readings" data-testid="readings">
      <div class="toolbar">
        <label class="field">
          <span>Device</span>
          <select
            data-testid="device-select"
            value={factory && route.device ? `${factory}/${route.device}` : ''}
            onChange={(e) => {
              const d = inFactory.find((x) => `${x.factory}/${x.device}` === e.currentTarget.value);
              if (d) navigate({ ...route, factory: d.factory, device: d.device, metric: route.metric });
            }}
          >
            {groupByLine(inFactory).map(([line, list]) => (
              <optgroup key={line} label={line}>
                {list.map((d) => (
                  <option key={`${d.factory}/${d.device}`} value={`${d.factory}/${d.device}`}>
                    {route.factory ? '' : `${d.factory} / `}
                    {d.device}
                  </option>
                ))}
              </optgroup>
            ))}
          </select>
        </label>
        <label class="field">
          <span>Metric</span>
          <select
            data-testid="metric-select"
            value={route.metric ?? ''}
            disabled={!metricList?.length}
            onChange={(e) => navigate({ ...route, metric: e.currentTarget.value })}
          >
            {(metricList ?? []).map((m) => (
              <option key={m.metric} value={m.metric}>
                {m.metric}
                {m.unit ? ` (${m.unit})` : ''} · {num(m.readings)}
              </option>
            ))}
          </select>
        </label>
        <TimeRangePicker
          route={route}
          range={range}
          presets={['1h', '6h', '24h', '7d', 'all']}
          anchorLabel="this metric's latest reading"
        />
      </div>
      <ErrorBanner error={devices ? (metrics.error ?? readings.error) : props.devicesError} />
      {metricList && metricList.length === 0 && <Empty>No readings for {route.device} yet.</Empty>}
      <Panel
        title={
          <>
            {route.device ?? '…'} · {route.metric ?? '…'}
            {series?.unit ? <span class="muted"> ({series.unit})</span> : null}
          </>
        }
        actions={
          <>
            <button type="button" onClick={zoomOut} disabled={!series} data-testid="zoom-out">
              Zoom out
            </button>
            <a
              class="button"
              {...linkProps({
                view: 'events',
                factory,
                device: route.device,
                from: series ? iso(series.from) : undefined,
                to: series ? iso(series.to) : undefined,
              })}
            >
              Events in this range →
            </a>
          </>
        }
      >
        <div ref={chartBox} class={`chart-box ${readings.loading ? 'stale' : ''}`}>
          {series && <ReadingsChart series={series} onZoom={zoom} />}
          {series && series.points.length === 0 && series.anomalies.length === 0 && (
            <div class="chart-note" data-testid="empty">
              No readings in this range: zoom out or pick another range.
            </div>
          )}
          {!series && !readings.error && !(props.devicesError && !devices) && (
            <div class="chart-empty" style={{ height: `${CHART_HEIGHT}px` }}>
              <Loading />
            </div>
          )}
        </div>
        {series && (
          <p class="chart-foot" data-testid="readings-summary">
            <b>{num(series.rows)}</b> readings
            {series.downsampled ? (
              <>
                , downsampled to <b>{num(series.points.length)}</b> points
              </>
            ) : (
              <>, all {num(series.points.length)} points shown</>
            )}{' '}
            ·{' '}
            <span class={series.anomalies.length ? 'text-bad' : ''}>
              {num(series.anomalies.length)} anomal{series.anomalies.length === 1 ? 'y' : 'ies'}
            </span>{' '}
            · {describeRange({ from: series.from, to: series.to, preset: undefined })}
            <span class="muted"> · drag across the chart to zoom in</span>
          </p>
        )}
      </Panel>
      {series && series.anomalies.length > 0 && <AnomalyTable series={series} onZoom={zoom} />}
    </div>
  );
}

function ReadingsChart({
  series,
  onZoom,
}: {
  series: ReadingSeries;
  onZoom: (from: number, to: number) => void;
}) {
  const zoomRef = useRef(onZoom);
  zoomRef.current = onZoom;
  const rangeRef = useRef<[number, number]>([series.from, series.to]);
  rangeRef.current = [series.from, series.to];
  const data = useMemo(() => alignSeries(series), [series]);

  const options = useMemo<Omit<uPlot.Options, 'width' | 'height'>>(
    () => ({
      ms: 1,
      cursor: { drag: { x: true, y: false, setScale: false }, points: { size: 7 } },
      select: { show: true, left: 0, top: 0, width: 0, height: 0 },
      legend: { show: true, live: true },
      scales: {
        x: { time: true, range: () => rangeRef.current },
        y: {
          range: (_u, min, max) => {
            const pad = (max - min) * 0.08 || Math.abs(max) * 0.05 || 1;
            return [min - pad, max + pad];
          },
        },
      },
      series: [
        TIME_SERIES,
        {
          label: series.metric,
          stroke: '#3b6ea5',
          width: 1.25,
          // A reading alone between gaps has no line to be seen on: its point is drawn.
          points: {
            filter: (u, i, show) => (show ? null : isolated(u.data[i] as (number | null | undefined)[])),
          },
          value: (_u, v) => (v === null ? '–' : `${+v.toFixed(3)}${series.unit ? ` ${series.unit}` : ''}`),
        },
        {
          label: 'anomaly',
          stroke: '#c0392b',
          fill: '#c0392b',
          width: 0,
          paths: () => null,
          points: { show: true, size: 9, width: 1.5, stroke: '#ffffff', fill: '#c0392b' },
          value: (_u, v) => (v === null ? '–' : `${+v.toFixed(3)}`),
        },
      ],
      axes: [
        TIME_AXIS,
        {
          ...AXIS,
          size: 56,
          label: series.unit ?? undefined,
          labelSize: series.unit ? 16 : 0,
          values: (_u, ticks) => ticks.map(compact),
        },
      ],
      hooks: {
        setSelect: [
          (u) => {
            const { left, width } = u.select;
            if (width < 4) return;
            const from = u.posToVal(left, 'x');
            const to = u.posToVal(left + width, 'x');
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            zoomRef.current(from, to);
          },
        ],
      },
    }),
    [series.metric, series.unit],
  );

  return (
    <UPlotChart
      options={options}
      data={data}
      height={CHART_HEIGHT}
      testid="readings-chart"
      attrs={{
        'data-points': series.points.length,
        'data-anomalies': series.anomalies.length,
        'data-rows': series.rows,
        'data-from': series.from,
        'data-to': series.to,
        'data-downsampled': String(series.downsampled),
      }}
    />
  );
}

function AnomalyTable({
  series,
  onZoom,
}: {
  series: ReadingSeries;
  onZoom: (from: number, to: number) => void;
}) {
  const shown = series.anomalies.slice(0, 200);
  return (
    <Panel
      title={`Anomalies (${num(series.anomalies.length)})`}
      actions={<span class="muted">click one to zoom to ±10 min around it</span>}
      testid="anomalies"
    >
      <div class="table-wrap table-scroll" style={{ maxHeight: '220px' }}>
        <table class="table">
          <thead>
            <tr>
              <th>Time</th>
              <th class="right">Value</th>
              <th class="right">Anomaly score</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {shown.map(([t, v, score]) => (
              <tr key={`${t}/${v}`} data-testid="anomaly-row">
                <td>{dateTime(t, true)}</td>
                <td class="right">
                  {+v.toFixed(3)}
                  {series.unit ? ` ${series.unit}` : ''}
                </td>
                <td class="right">{score === null ? '–' : score.toFixed(2)}</td>
                <td class="right">
                  <button type="button" class="link" onClick={() => onZoom(t - 600_000, t + 600_000)}>
                    zoom
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Panel>
  );
}
