import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { dateTime } from './format.js';

/**
 * A uPlot chart that fills its container's width. `options` (without width/height) is fixed for the
 * chart's life: pass a memoised object; a new one rebuilds the chart. New `data` is drawn in place.
 * `attrs` go on the container (the `data-*` a browser test reads: what was drawn).
 */
export function UPlotChart(props: {
  options: Omit<uPlot.Options, 'width' | 'height'>;
  data: uPlot.AlignedData;
  height: number;
  testid: string;
  attrs?: Record<string, string | number>;
  class?: string;
}) {
  const container = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const drawn = useRef<uPlot.AlignedData | null>(null);

  useEffect(() => {
    const el = container.current;
    if (!el) return;
    const width = () => Math.max(200, Math.floor(el.clientWidth));
    const u = new uPlot({ ...props.options, width: width(), height: props.height }, props.data, el);
    plot.current = u;
    drawn.current = props.data;
    const observer = new ResizeObserver(() => {
      if (width() !== u.width) u.setSize({ width: width(), height: props.height });
    });
    observer.observe(el);
    return () => {
      observer.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [props.options, props.height]);

  useEffect(() => {
    if (plot.current && drawn.current !== props.data) {
      plot.current.setData(props.data);
      drawn.current = props.data;
    }
  }, [props.data]);

  return (
    <div ref={container} class={`chart ${props.class ?? ''}`} data-testid={props.testid} {...props.attrs} />
  );
}

/** Axis and grid colours shared by the charts (the page's calm palette). */
export const AXIS: uPlot.Axis = {
  stroke: '#5b6675',
  grid: { stroke: '#e3e7ec', width: 1 },
  ticks: { stroke: '#cfd5dc', width: 1 },
  font: '12px system-ui, sans-serif',
};

const pad = (n: number) => String(n).padStart(2, '0');

/**
 * The time axis in the page's format (24 h clock, `MM-DD` dates) instead of uPlot's US default: a
 * date under the first tick and wherever the day changes.
 */
export const TIME_AXIS: uPlot.Axis = {
  ...AXIS,
  values: (_u, splits, _axis, _space, incr) => {
    let day = '';
    return splits.map((t) => {
      const d = new Date(t);
      const date = `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
      if (incr >= 86_400_000) return date;
      const time = `${pad(d.getHours())}:${pad(d.getMinutes())}${incr < 60_000 ? `:${pad(d.getSeconds())}` : ''}`;
      const label = date !== day ? `${time}\n${date}` : time;
      day = date;
      return label;
    });
  },
};

/** The x series of a time chart: its legend value in the page's format. */
export const TIME_SERIES: uPlot.Series = {
  value: (_u, v) => (v === null || v === undefined ? '–' : dateTime(v, true)),
};

/** Compact numbers on axes: 1.2k, 3.4M. */
export function compact(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toFixed(0)}k`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(a < 1 && a > 0 ? 3 : 2)}`;
}
