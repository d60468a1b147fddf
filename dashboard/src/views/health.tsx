import { useMemo, useState } from 'preact/hooks';
import type { DeviceSummary, HealthGrid } from '../../../functions/contracts/api.js';
import { useApi } from '../api.js';
import { dateTime, iso, num, scoreColor, timeOnly } from '../format.js';
import { useWidth } from '../hooks.js';
import { navigate, type Route, type ViewProps } from '../route.js';
import { rangeParams, resolveRange, TimeRangePicker } from '../time-range.js';
import { Empty, ErrorBanner, Loading, Panel } from '../ui.js';

const HOUR = 3_600_000;
const LABEL_WIDTH = 190;

type Cell = HealthGrid['cells'][number];

/** The latest data of the devices in view: what the presets reach back from. */
export function latestSeen(
  devices: DeviceSummary[] | undefined,
  factory: string | undefined,
): number | undefined {
  let latest: number | undefined;
  for (const d of devices ?? []) {
    if (factory && d.factory !== factory) continue;
    const t = d.lastSeen ? Date.parse(d.lastSeen) : Number.NaN;
    if (!Number.isNaN(t) && (latest === undefined || t > latest)) latest = t;
  }
  return latest;
}

export function HealthView(props: ViewProps) {
  const { route } = props;
  const anchor = latestSeen(props.devices, route.factory);
  // The API's own default is the 48 hours up to the latest data; the same, as a preset.
  const range = resolveRange(route, '48h', anchor, HOUR);
  const { data, error, loading } = useApi<HealthGrid>(
    // Waits for the catalogue (the presets' anchor); without one, the API's own anchor will do.
    props.devices || props.devicesError ? '/api/health' : null,
    { factory: route.factory, ...rangeParams(range) },
    props.refresh,
  );

  return (
    <div class="view view-health" data-testid="health">
      <div class="toolbar">
        <TimeRangePicker
          route={route}
          range={range}
          presets={['24h', '48h', '7d', '30d', '90d']}
          anchorLabel="the latest reading"
        />
        <Legend />
      </div>
      <ErrorBanner error={error} />
      {data ? (
        <Panel
          title="Device health per hour"
          actions={
            <span class="muted">
              {data.bucketHours > 1 ? `${data.bucketHours} hours per column · ` : ''}click a cell to see that
              device's readings around then
            </span>
          }
        >
          {data.truncated && (
            <div class="banner banner-info" data-testid="health-truncated">
              More cells than one answer holds: only part of the grid is shown. Narrow the range or pick a
              factory.
            </div>
          )}
          {data.devices.length === 0 || data.hours.length === 0 ? (
            <Empty>No device data in this range.</Empty>
          ) : (
            <Heatmap grid={data} route={route} stale={loading} />
          )}
        </Panel>
      ) : (
        !error && <Loading />
      )}
    </div>
  );
}

function Legend() {
  return (
    <div class="legend">
      <span class="muted">score</span>
      <span class="legend-end">0</span>
      <span
        class="legend-bar"
        style={{
          background: `linear-gradient(90deg, ${[0, 25, 50, 65, 80, 90, 100].map(scoreColor).join(', ')})`,
        }}
      />
      <span class="legend-end">100</span>
      <span class="legend-swatch empty-swatch" /> <span class="muted">no data</span>
    </div>
  );
}

/** Hour labels every `step` columns, so labels stay at least ~44 px apart. */
function labelStep(cellWidth: number): number {
  for (const step of [1, 2, 3, 6, 12, 24, 48, 168]) if (step * cellWidth >= 44) return step;
  return 168;
}

function Heatmap({ grid, route, stale }: { grid: HealthGrid; route: Route; stale: boolean }) {
  const [hover, setHover] = useState<{ cell: Cell; x: number; y: number; below: boolean } | null>(null);
  const [wrapRef, width] = useWidth<HTMLDivElement>();

  const layout = useMemo(() => {
    const hourIndex = new Map(grid.hours.map((h, i) => [h, i]));
    // Rows grouped by line (factory first when there are several), devices by name within a line.
    const many = new Set(grid.devices.map((d) => d.factory)).size > 1;
    const groupOf = (d: HealthGrid['devices'][number]) =>
      `${many ? `${d.factory} · ` : ''}${d.line ?? 'No line'}`;
    const devices = [...grid.devices].sort(
      (a, b) =>
        groupOf(a).localeCompare(groupOf(b), 'en', { numeric: true }) ||
        a.device.localeCompare(b.device, 'en', { numeric: true }),
    );
    const rows: ({ kind: 'group'; label: string } | { kind: 'device'; device: (typeof devices)[number] })[] =
      [];
    const rowOf = new Map<string, number>();
    let group: string | undefined;
    for (const d of devices) {
      const g = groupOf(d);
      if (g !== group) {
        rows.push({ kind: 'group', label: g });
        group = g;
      }
      rows.push({ kind: 'device', device: d });
      rowOf.set(`${d.factory}\u0000${d.device}`, rows.length);
    }
    return { hourIndex, rows, rowOf };
  }, [grid]);

  // Cells fill the panel's width (about 1,100 px on a laptop) down to 4 px, then the grid scrolls.
  const available = Math.max(300, (width || 1100) - LABEL_WIDTH - 4);
  // Columns share the width while they get 4 px or more (at most 48); below that they keep 4 px and scroll.
  const fits = available / grid.hours.length >= 4;
  const cellWidth = Math.max(4, Math.min(48, available / grid.hours.length));
  const step = labelStep(cellWidth);
  const columns = `${LABEL_WIDTH}px repeat(${grid.hours.length}, ${fits ? `minmax(0, ${cellWidth}px)` : '4px'})`;

  const span = grid.bucketHours * HOUR;
  // The readings of the cell's hour(s), with an hour of context either side.
  const open = (cell: Cell) =>
    navigate({
      view: 'readings',
      factory: cell.factory,
      device: cell.device,
      metric: route.metric,
      from: iso(cell.hour - HOUR),
      to: iso(cell.hour + span + HOUR),
    });

  // The tooltip is fixed to the viewport, so the scrolling grid does not clip it; below the cell near the top.
  const show = (cell: Cell, e: Event) => {
    const r = (e.currentTarget as HTMLElement).getBoundingClientRect();
    const below = r.top < 150;
    const x = Math.min(window.innerWidth - 120, Math.max(120, r.left + r.width / 2)); // kept on screen
    setHover({ cell, x, y: below ? r.bottom + 6 : r.top - 6, below });
  };
  const hide = () => setHover(null);

  return (
    <div class={`heatmap-wrap ${stale ? 'stale' : ''}`} ref={wrapRef}>
      <div
        class={`heatmap ${cellWidth < 10 ? 'hm-dense' : ''}`}
        style={{ gridTemplateColumns: columns }}
        data-testid="health-grid"
        data-devices={grid.devices.length}
        data-hours={grid.hours.length}
        data-cells={grid.cells.length}
        data-bucket-hours={grid.bucketHours}
      >
        <div class="hm-corner" style={{ gridRow: 1, gridColumn: 1 }}>
          Device
        </div>
        {grid.hours.map((h, i) => {
          if (i % step !== 0) return null;
          const previous = grid.hours[i - step];
          const newDay =
            previous === undefined || dateTime(previous).slice(0, 10) !== dateTime(h).slice(0, 10);
          return (
            <div
              key={h}
              class="hm-hour"
              style={{ gridRow: 1, gridColumn: `${i + 2} / span ${Math.min(step, grid.hours.length - i)}` }}
              title={dateTime(h)}
            >
              <b class="hm-date">{newDay ? dateTime(h).slice(5, 10) : '\u00a0'}</b>
              {step < 24 && <span>{timeOnly(h)}</span>}
            </div>
          );
        })}
        {layout.rows.map((row, r) =>
          row.kind === 'group' ? (
            <div key={`g${row.label}`} class="hm-group" style={{ gridRow: r + 2, gridColumn: '1 / -1' }}>
              {row.label}
            </div>
          ) : (
            <div
              key={`d${row.device.factory}/${row.device.device}`}
              class="hm-label"
              style={{ gridRow: r + 2, gridColumn: 1 }}
              title={`${row.device.factory} / ${row.device.device}`}
            >
              <span class="hm-device">{row.device.device}</span>
              {row.device.criticality && (
                <span class={`crit crit-${row.device.criticality}`}>{row.device.criticality}</span>
              )}
            </div>
          ),
        )}
        {layout.rows.map((row, r) =>
          row.kind === 'device' ? (
            <div key={`bg${r}`} class="hm-track" style={{ gridRow: r + 2, gridColumn: '2 / -1' }} />
          ) : null,
        )}
        {grid.cells.map((cell) => {
          const col = layout.hourIndex.get(cell.hour);
          const row = layout.rowOf.get(`${cell.factory}\u0000${cell.device}`);
          if (col === undefined || row === undefined) return null;
          return (
            <button
              type="button"
              key={`${cell.factory}/${cell.device}/${cell.hour}`}
              class="hm-cell"
              style={{ gridRow: row + 1, gridColumn: col + 2, background: scoreColor(cell.score) }}
              data-testid="health-cell"
              data-device={cell.device}
              data-factory={cell.factory}
              data-hour={iso(cell.hour)}
              data-score={cell.score}
              aria-label={`${cell.device} ${dateTime(cell.hour)}: score ${Math.round(cell.score)}`}
              onClick={() => open(cell)}
              onMouseEnter={(e) => show(cell, e)}
              onFocus={(e) => show(cell, e)}
              onMouseLeave={hide}
              onBlur={hide}
            />
          );
        })}
      </div>
      {hover && (
        <div
          class={`tooltip ${hover.below ? 'tooltip-below' : ''}`}
          data-testid="health-tooltip"
          style={{ left: `${hover.x}px`, top: `${hover.y}px` }}
          role="tooltip"
        >
          <div class="tooltip-title">
            {hover.cell.device}
            <span class="score" style={{ background: scoreColor(hover.cell.score) }}>
              {Math.round(hover.cell.score)}
            </span>
          </div>
          <div class="muted nowrap">
            {dateTime(hover.cell.hour)} – {timeOnly(hover.cell.hour + span)}
          </div>
          <dl class="kv">
            <dt>Readings</dt>
            <dd>{num(hover.cell.readings)}</dd>
            <dt>Anomalies</dt>
            <dd class={hover.cell.anomalies ? 'text-warn' : ''}>{num(hover.cell.anomalies)}</dd>
            <dt>Errors</dt>
            <dd class={hover.cell.errors ? 'text-bad' : ''}>{num(hover.cell.errors)}</dd>
            <dt>Warnings</dt>
            <dd class={hover.cell.warnings ? 'text-warn' : ''}>{num(hover.cell.warnings)}</dd>
          </dl>
        </div>
      )}
    </div>
  );
}
